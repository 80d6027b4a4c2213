"""The explicit map from (type, version) to payload model, and the two ways through it."""

from __future__ import annotations

import uuid
from typing import Any

from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import EVENT_TYPES


class UnknownEventType(LookupError):
    """A consumer received a (type, version) it does not know: the message is dead-lettered."""


def _build_registry() -> dict[tuple[str, int], type[EventPayload]]:
    registry: dict[tuple[str, int], type[EventPayload]] = {}
    for model in EVENT_TYPES:
        key = (model.event_type, model.event_version)
        if key in registry:
            raise ValueError(f"event {key} is registered twice")
        registry[key] = model
    return registry


REGISTRY: dict[tuple[str, int], type[EventPayload]] = _build_registry()


def payload_model(event_type: str, version: int) -> type[EventPayload]:
    try:
        return REGISTRY[(event_type, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event {event_type} v{version}") from None


def parse_payload(envelope: Envelope) -> EventPayload:
    """Validate an envelope's payload against its registered model (raises on a bad payload)."""
    return payload_model(envelope.type, envelope.version).model_validate(envelope.payload)


def envelope_for(
    payload: EventPayload,
    *,
    producer: str,
    correlation_id: str,
    town_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap a payload for the outbox; the town defaults to the payload's own `town_id`."""
    if (payload.event_type, payload.event_version) not in REGISTRY:
        raise UnknownEventType(f"{type(payload).__name__} is not registered")
    extra: dict[str, Any] = {} if event_id is None else {"event_id": event_id}
    return Envelope(
        type=payload.event_type,
        version=payload.event_version,
        town_id=town_id if town_id is not None else getattr(payload, "town_id", None),
        producer=producer,
        correlation_id=correlation_id,
        payload=payload.model_dump(mode="json"),
        **extra,
    )
