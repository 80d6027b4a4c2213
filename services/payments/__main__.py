"""`python -m services.payments`: serve the payments service."""

from services.payments.app import SERVICE, create_app
from services.payments.settings import Settings
from shared.plumbing.runtime import serve

if __name__ == "__main__":
    serve(SERVICE, Settings, create_app)
