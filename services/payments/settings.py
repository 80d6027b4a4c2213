"""Settings of the payments service (environment prefix PAYMENTS_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore", frozen=True)

    port: int = 8003
    database_url: str = "postgresql://postgres@127.0.0.1:5432/portail_payments"
    # PayFiP's web service and payment page (one host for the T, X and W modes); the simulator locally.
    payfip_url: str = "https://www.payfip.gouv.fr"
    invoices_url: str = "http://127.0.0.1:8002"
    # Where PayFiP's servers reach the gateway's notification endpoint (`/payfip/notification`).
    public_notification_base: str = "http://127.0.0.1:8000"
