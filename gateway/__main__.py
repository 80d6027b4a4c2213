"""`python -m gateway`: serve the residents' pages."""

from gateway.app import SERVICE, create_app
from gateway.settings import Settings
from shared.plumbing.runtime import serve

if __name__ == "__main__":
    serve(SERVICE, Settings, create_app)
