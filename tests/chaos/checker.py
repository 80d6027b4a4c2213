"""After the storm: count, from the databases, the broker and the mail sink, what was lost or doubled.

- lost events: an event the producer's outbox marks published (or still holds) that a subscribed
  service never recorded in its inbox;
- stuck outbox rows: events still unpublished once everything is back;
- effects applied twice: counted per effect by the scenario (an e-mail by Message-ID, an invoice paid
  twice, a payment settled twice…);
- queues without consumers: a service's queue with no consumer attached.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import aio_pika
import asyncpg

from tests.foundation.test_contracts import CONSUMERS
from tools.suite import SERVICES, SuiteConfig


@dataclass
class Counts:
    events_published: int = 0
    lost_events: int = 0
    stuck_outbox_rows: int = 0
    queues_without_consumers: list[str] = field(default_factory=list)
    lost_examples: list[str] = field(default_factory=list)


def subscribers() -> dict[str, set[str]]:
    """Event type → the services whose consumer binds it."""
    found: dict[str, set[str]] = {}
    for service, subscriptions in CONSUMERS.items():
        for subscription in subscriptions:
            found.setdefault(subscription.model.event_type, set()).add(service)
    return found


async def count_events(config: SuiteConfig) -> Counts:
    counts = Counts()
    inboxes: dict[str, set[str]] = {}
    for service in SERVICES:
        conn = await asyncpg.connect(config.database(service))
        try:
            inboxes[service] = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM inbox")}
        finally:
            await conn.close()
    wanted = subscribers()
    for service in SERVICES:
        conn = await asyncpg.connect(config.database(service))
        try:
            rows = await conn.fetch("SELECT event_id, event_type, published_at FROM outbox")
        finally:
            await conn.close()
        for row in rows:
            if row["published_at"] is None:
                counts.stuck_outbox_rows += 1
                continue
            counts.events_published += 1
            for consumer in wanted.get(row["event_type"], set()):
                if str(row["event_id"]) not in inboxes[consumer]:
                    counts.lost_events += 1
                    if len(counts.lost_examples) < 5:
                        counts.lost_examples.append(f"{row['event_type']} {row['event_id']} → {consumer}")
    return counts


async def queues_without_consumers(amqp_url: str, queue_prefix: str, services: list[str]) -> list[str]:
    empty: list[str] = []
    connection = await aio_pika.connect(amqp_url)
    try:
        for service in services:
            channel = await connection.channel()
            name = f"{queue_prefix}.{service}"
            with contextlib.suppress(Exception):
                queue = await channel.declare_queue(name, passive=True)
                if not queue.declaration_result.consumer_count:
                    empty.append(name)
            with contextlib.suppress(Exception):
                await channel.close()
    finally:
        await connection.close()
    return empty
