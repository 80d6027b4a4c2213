"""Settings every service shares; each service subclasses with its own environment prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Defaults fit a developer's machine: PostgreSQL and RabbitMQ on localhost with their stock setup."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Names on the broker; tests give each run its own so runs never see each other's messages.
    exchange: str = "portail.events"
    queue_prefix: str = "portail"
    delivery_limit: int = Field(default=5, ge=1)
    consumer_prefetch: int = Field(default=16, ge=1)
    outbox_sweep_seconds: float = Field(default=2.0, gt=0)
    outbox_batch_size: int = Field(default=200, ge=1)
    outbox_retention_seconds: float = Field(default=3600.0, ge=0)
    # When set, every route but health, readiness and metrics needs it in X-Internal-Token.
    internal_token: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0)
