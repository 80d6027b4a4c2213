"""`python -m services.notifier`: serve the notifier service."""

from services.notifier.app import SERVICE, create_app
from services.notifier.settings import Settings
from shared.plumbing.runtime import serve

if __name__ == "__main__":
    serve(SERVICE, Settings, create_app)
