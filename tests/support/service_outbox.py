"""Events made to come from another service, through that service's real outbox, relay and broker.

While a producer is still being written (auth's `account_activated`, payments' `payment_succeeded`), a
consumer's tests insert the event into the producer's `outbox` table exactly as
`shared.plumbing.uow.UnitOfWork.publish` writes it; the producer's own relay then publishes it, so
routing, the consumer's queue and its inbox are all the real ones.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from shared.contracts import Envelope, EventPayload, envelope_for
from tests.support.suite import Suite


async def publish_through_service_outbox(
    suite: Suite, producer: str, payload: EventPayload, *, event_id: uuid.UUID | None = None
) -> Envelope:
    """Write `payload` into `producer`'s outbox as its unit of work would; its relay sends it."""
    envelope = envelope_for(
        payload, producer=producer, correlation_id="test-" + uuid.uuid4().hex[:12], event_id=event_id
    )
    conn = await suite.db(producer)
    try:
        await conn.execute(
            "INSERT INTO outbox (event_id, event_type, routing_key, envelope) VALUES ($1, $2, $3, $4::jsonb)",
            envelope.event_id,
            envelope.type,
            envelope.routing_key,
            envelope.model_dump_json(),
        )
    finally:
        await conn.close()
    return envelope


async def publish_again_through_service_outbox(
    suite: Suite, producer: str, event_id: uuid.UUID, *, timeout: float = 20.0
) -> None:
    """Send an event once more under the same id (a broker redelivery, a relay crash after confirm):
    wait until the relay has published it, then mark its outbox row unsent so the relay sends it again."""
    conn = await suite.db(producer)
    try:
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT published_at FROM outbox WHERE event_id = $1", event_id) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{producer}'s relay did not publish {event_id} within {timeout}s")
            await asyncio.sleep(0.05)
        await conn.execute(
            "UPDATE outbox SET published_at = NULL, next_attempt_at = now() WHERE event_id = $1", event_id
        )
        await conn.execute("SELECT pg_notify('outbox', '')")  # wake the relay now rather than at its sweep
    finally:
        await conn.close()
