"""Settings of the invoices service (environment prefix INVOICES_)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.invoices.import_format import ImportLimits
from shared.plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INVOICES_", extra="ignore", frozen=True)

    port: int = 8002
    database_url: str = "postgresql://postgres@127.0.0.1:5432/portail_invoices"

    # Imports: a CSV (or JSON) body, or a zip with the CSV and its PDFs. Past these, the office splits.
    import_max_rows: int = Field(default=200_000, ge=1)
    import_max_csv_bytes: int = Field(default=50 * 1024**2, ge=1024)
    import_max_zip_bytes: int = Field(default=64 * 1024**2, ge=1024)
    pdf_max_bytes: int = Field(default=5 * 1024**2, ge=1024)
    # When the office supplied no PDF, the portal draws one at the first download (and keeps it).
    generate_missing_pdfs: bool = True
    # «Contact»: messages one resident may send per hour.
    contact_messages_per_hour: int = Field(default=5, ge=1)

    @property
    def import_limits(self) -> ImportLimits:
        return ImportLimits(
            max_rows=self.import_max_rows,
            max_csv_bytes=self.import_max_csv_bytes,
            max_zip_bytes=self.import_max_zip_bytes,
            max_pdf_bytes=self.pdf_max_bytes,
        )

    @property
    def max_body_bytes(self) -> int:
        """The largest request aiohttp reads: a zip, or a JSON body (its text is larger than the CSV's)."""
        return max(self.import_max_zip_bytes, 2 * self.import_max_csv_bytes) + 1024**2


SETTINGS = web.AppKey("invoices_settings", Settings)
