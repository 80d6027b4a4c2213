"""`python -m services.auth`: serve the auth service."""

from services.auth.app import SERVICE, create_app
from services.auth.settings import Settings
from shared.plumbing.runtime import serve

if __name__ == "__main__":
    serve(SERVICE, Settings, create_app)
