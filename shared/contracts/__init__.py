"""Event contracts shared by every service: the envelope, the payload models, the registry."""

from shared.contracts import events
from shared.contracts.envelope import Envelope, EventPayload, routing_key
from shared.contracts.registry import REGISTRY, UnknownEventType, envelope_for, parse_payload, payload_model

__all__ = [
    "REGISTRY",
    "Envelope",
    "EventPayload",
    "UnknownEventType",
    "envelope_for",
    "events",
    "parse_payload",
    "payload_model",
    "routing_key",
]
