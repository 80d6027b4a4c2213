"""Settings of the notifier (environment prefix NOTIFIER_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", frozen=True)

    port: int = 8004
    database_url: str = "postgresql://postgres@127.0.0.1:5432/portail_notifier"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    from_address: str = "no-reply@portail.localhost"
    from_name: str = "Le portail des factures"
    # Parallel SMTP connections; each sends its e-mails one after the other.
    senders: int = Field(default=2, ge=1, le=32)
    max_attempts: int = Field(default=8, ge=1)
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    sweep_seconds: float = Field(default=2.0, gt=0)
    # An e-mail left "sending" by a process killed mid-send is not sent again (at most one e-mail).
    interrupted_after_seconds: float = Field(default=120.0, gt=0)
