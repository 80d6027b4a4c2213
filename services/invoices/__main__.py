"""`python -m services.invoices`: serve the invoices service."""

from services.invoices.app import SERVICE, create_app
from services.invoices.settings import Settings
from shared.plumbing.runtime import serve

if __name__ == "__main__":
    serve(SERVICE, Settings, create_app)
