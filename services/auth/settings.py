"""Settings of the auth service (environment prefix AUTH_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", frozen=True)

    port: int = 8001
    database_url: str = "postgresql://postgres@127.0.0.1:5432/portail_auth"

    # Argon2id, at or above OWASP's recommendation (m = 19 MiB, t = 2, p = 1).
    argon2_time_cost: int = Field(default=2, ge=2)
    argon2_memory_kib: int = Field(default=19456, ge=19456)
    argon2_parallelism: int = Field(default=1, ge=1)
    # Hashing runs in these threads (argon2 releases the GIL), never on the event loop.
    hashing_threads: int = Field(default=2, ge=1)

    activation_link_hours: float = Field(default=72, gt=0)
    reset_link_minutes: float = Field(default=30, gt=0)
    email_change_link_hours: float = Field(default=24, gt=0)

    # A browser session ends after this much inactivity, and in any case after the absolute limit.
    session_idle_minutes: float = Field(default=30, gt=0)
    session_absolute_hours: float = Field(default=12, gt=0)
    remember_days: float = Field(default=30, gt=0)

    # Activation and reset e-mails per address per hour (past it: the same answer, no e-mail).
    emails_per_address_per_hour: int = Field(default=3, ge=1)
    # Failed logins tolerated before delays start, per account and per client address.
    free_failures_per_account: int = Field(default=3, ge=1)
    free_failures_per_client: int = Field(default=20, ge=1)
    max_login_delay_seconds: float = Field(default=300, gt=0)
