"""The envelope every event travels in, on the wire and in the outbox.

The JSON of an envelope is the contract between services: a producer and its consumers share this
module, and a sample of every payload lives in `samples/` for the contract tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator


class EventPayload(BaseModel):
    """Base class of every event payload.

    Unknown fields are ignored so that a producer may add optional fields within a version without
    breaking consumers that do not know them yet (GOV.UK Pay's rule: only optional additions).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Set on each concrete payload class; together they name the routing key `type.vN`.
    event_type: ClassVar[str]
    event_version: ClassVar[int]


class Envelope(BaseModel):
    """A fact that happened in one service, addressed to whoever subscribes to its type."""

    model_config = ConfigDict(frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = Field(ge=1)
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    town_id: uuid.UUID | None = None
    producer: str
    correlation_id: str
    payload: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def routing_key(self) -> str:
        return routing_key(self.type, self.version)


def routing_key(event_type: str, version: int) -> str:
    """`invoices.invoice_published` version 1 travels as `invoices.invoice_published.v1`."""
    return f"{event_type}.v{version}"
