"""A two-sided harness on the real plumbing: a producer database with an outbox and a relay, a consumer
database with an inbox, and RabbitMQ between them, under names that belong to one test."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.contracts import Envelope
from shared.contracts.events import DebtorUpserted
from shared.plumbing import db
from shared.plumbing.bus import Publisher, dead_letter_exchange_name
from shared.plumbing.inbox import EventConsumer, Subscription
from shared.plumbing.metrics import Metrics, create_metrics
from shared.plumbing.outbox import OutboxRelay
from shared.plumbing.uow import UnitOfWork
from tests.support.infra import Infra

MIGRATIONS = Path(__file__).parent / "migrations"
TOWN = uuid.UUID("00000000-0000-4000-8000-000000000001")


@dataclass
class Harness:
    infra: Infra
    name: str
    producer_url: str
    consumer_url: str
    producer: asyncpg.Pool
    consumer: asyncpg.Pool
    metrics: dict[str, Metrics] = field(default_factory=dict)
    _stoppers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def exchange(self) -> str:
        return f"{self.infra.run_id}.{self.name}"

    @property
    def queue(self) -> str:
        return f"{self.infra.run_id}.{self.name}.consumer"

    async def start_relay(self, *, amqp_url: str | None = None, sweep_seconds: float = 0.5) -> OutboxRelay:
        publisher = Publisher(
            amqp_url or self.infra.amqp_url, self.exchange, connection_name="test-publisher"
        )
        await publisher.start()
        relay = OutboxRelay(
            self.producer, publisher, listen_dsn=self.producer_url, sweep_seconds=sweep_seconds
        )
        task = asyncio.create_task(relay.run())

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await publisher.close()

        self._stoppers.append(stop)
        return relay

    async def start_consumer(
        self,
        handler: Callable[[Any, Envelope, UnitOfWork], Awaitable[None]] | None = None,
        *,
        replica: str = "",
        amqp_url: str | None = None,
        consumer_class: type[EventConsumer] = EventConsumer,
        delivery_limit: int = 3,
    ) -> EventConsumer:
        async def record_effect(event: DebtorUpserted, envelope: Envelope, uow: UnitOfWork) -> None:
            await uow.conn.execute(
                "INSERT INTO effects (debtor_id, event_id, replica) VALUES ($1, $2, $3)",
                event.debtor_id,
                envelope.event_id,
                replica,
            )

        consumer = consumer_class(
            amqp_url=amqp_url or self.infra.amqp_url,
            exchange=self.exchange,
            queue=self.queue,
            subscriptions=[Subscription(DebtorUpserted, handler or record_effect)],
            uow_factory=lambda: UnitOfWork(self.consumer, producer="test-consumer"),
            delivery_limit=delivery_limit,
            prefetch=8,
            connection_name=f"test-consumer-{replica}",
            retry_pause_seconds=0.01,
            metrics=self.metrics.setdefault(replica, create_metrics(f"test-{replica}")),
        )
        await consumer.start()
        self._stoppers.append(lambda: consumer.stop(timeout=5))
        return consumer

    async def write_debtors(self, count: int, *, name: str = "Dupont") -> list[uuid.UUID]:
        """The producer's state change and its events, in one transaction per debtor."""
        ids = []
        for _ in range(count):
            debtor_id = uuid.uuid4()
            async with UnitOfWork(self.producer, producer="test-producer") as uow:
                await uow.conn.execute("INSERT INTO debtors VALUES ($1, $2)", debtor_id, name)
                await uow.publish(
                    DebtorUpserted(
                        town_id=TOWN, debtor_id=debtor_id, reference="D1", name=name, emails=["a@example.org"]
                    )
                )
            ids.append(debtor_id)
        return ids

    def consumed(self, replica: str, outcome: str) -> float:
        value = self.metrics[replica].registry.get_sample_value(
            "portail_events_consumed_total", {"type": "invoices.debtor_upserted", "outcome": outcome}
        )
        return value or 0.0

    async def effects(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.consumer.fetch(
            "SELECT debtor_id, event_id, replica FROM effects ORDER BY id"
        )
        return rows

    async def pending_outbox(self) -> int:
        count: int = await self.producer.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return count

    async def close(self) -> None:
        for stop in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                await stop()


@pytest.fixture
async def harness(infra: Infra) -> AsyncIterator[Harness]:
    name = "plumb" + secrets.token_hex(3)
    urls = []
    for side in ("producer", "consumer"):
        url = infra.db_url(f"{name}_{side}")
        await db.ensure_database(url)
        await db.migrate(url, {"plumbing": db.PLUMBING_MIGRATIONS, "service": MIGRATIONS})
        urls.append(url)
    producer = await db.create_pool(urls[0])
    consumer = await db.create_pool(urls[1])
    h = Harness(infra, name, urls[0], urls[1], producer, consumer)
    infra.queues.append(h.queue)
    infra.exchanges.extend([h.exchange, dead_letter_exchange_name(h.exchange)])
    yield h
    await h.close()
    await producer.close()
    await consumer.close()
