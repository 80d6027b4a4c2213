"""Settings of the gateway (environment prefix GATEWAY_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    environment: Literal["development", "production"] = "development"
    auth_url: str = "http://127.0.0.1:8001"
    invoices_url: str = "http://127.0.0.1:8002"
    payments_url: str = "http://127.0.0.1:8003"
    internal_token: SecretStr | None = None
    # Signs CSRF tokens. The development default is public: production must set its own.
    secret_key: SecretStr = SecretStr("development-only-secret-change-me")
    # Where residents are sent to pay; the CSP's form-action must allow it.
    payfip_origin: str = "https://www.payfip.gouv.fr"
    # Behind a reverse proxy that sets X-Forwarded-For (the production Ingress), use its first address.
    trust_forwarded_for: bool = False
    # How long a session resolved by auth is trusted without asking again (see sessions.SessionCache);
    # 0 asks auth on every page.
    session_cache_seconds: float = Field(default=2.0, ge=0)
    town_cache_seconds: float = Field(default=30.0, ge=0)
    service_timeout_seconds: float = Field(default=10.0, gt=0)
    # Starting a payment and confirming a return wait on PayFiP inside the payments service (its invoices
    # call, 10 s, plus PayFiP's, 15 s): giving up earlier would leave the resident with an error page
    # while the attempt it could not see goes on (and locks the invoice).
    payment_timeout_seconds: float = Field(default=35.0, gt=0)
    # A PayFiP notification is forwarded to payments within this time, then answered 200 regardless.
    payfip_notification_timeout_seconds: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"
    log_json: bool = True
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0)

    @property
    def secure_cookies(self) -> bool:
        """Cookies are Secure and HSTS is sent everywhere but on a developer's plain-HTTP machine."""
        return self.environment == "production"
