"""Events are never lost and never applied twice: the outbox, the relay, the bus and the inbox together,
on the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from urllib.parse import urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from shared.contracts import Envelope
from shared.contracts.events import DebtorUpserted
from shared.plumbing import db
from shared.plumbing.bus import Publisher, dead_letter_queue_name
from shared.plumbing.inbox import EventConsumer
from shared.plumbing.outbox import OutboxRelay
from shared.plumbing.uow import UnitOfWork
from tests.foundation.conftest import TOWN, Harness
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually


async def test_events_written_by_the_hundred_go_through_copy_and_each_applies_once(harness: Harness) -> None:
    """Above UnitOfWork._COPY_THRESHOLD events the outbox is written with COPY (large invoice imports);
    twice in one transaction, so the second batch must not carry the first one again."""
    await harness.start_consumer()
    await harness.start_relay()
    batches = [
        [
            DebtorUpserted(town_id=TOWN, debtor_id=uuid.uuid4(), reference=f"D{i}", name="Dupont", emails=[])
            for i in range(count)
        ]
        for count in (250, 210)
    ]
    async with UnitOfWork(harness.producer, producer="test-producer") as uow:
        written = [envelope for batch in batches for envelope in await uow.publish_many(batch)]
    rows = await harness.producer.fetch("SELECT event_id, envelope FROM outbox ORDER BY id")
    assert [r["event_id"] for r in rows] == [e.event_id for e in written]
    assert rows[0]["envelope"] == written[0].model_dump(mode="json")

    async def applied() -> bool:
        return len(await harness.effects()) == 460

    await eventually(applied, what="every event of both batches applied")
    effects = await harness.effects()
    assert sorted(str(r["event_id"]) for r in effects) == sorted(str(e.event_id) for e in written)


async def test_event_written_with_state_change_reaches_consumer_and_applies_once(harness: Harness) -> None:
    await harness.start_consumer()
    await harness.start_relay()

    [debtor_id] = await harness.write_debtors(1)

    async def applied() -> bool:
        return len(await harness.effects()) == 1

    await eventually(applied, what="the consumer applied the event")
    await asyncio.sleep(0.5)  # give a stray duplicate time to show up
    effects = await harness.effects()
    assert [row["debtor_id"] for row in effects] == [debtor_id]
    assert await harness.pending_outbox() == 0


async def test_rolled_back_state_change_publishes_nothing(harness: Harness) -> None:
    await harness.start_consumer()
    await harness.start_relay()

    async def failing_change() -> None:
        async with UnitOfWork(harness.producer, producer="test-producer") as uow:
            await uow.publish(
                DebtorUpserted(town_id=TOWN, debtor_id=uuid.uuid4(), reference="X", name="X", emails=[])
            )
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await failing_change()

    [kept] = await harness.write_debtors(1)
    await eventually(lambda: _count_is(harness, 1), what="the committed event arrived")
    await asyncio.sleep(0.3)
    assert [row["debtor_id"] for row in await harness.effects()] == [kept]
    assert await harness.producer.fetchval("SELECT count(*) FROM outbox") == 1


async def test_events_written_while_broker_unreachable_are_delivered_once_when_it_returns(
    harness: Harness,
) -> None:
    broker = urlsplit(harness.infra.amqp_url)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    await proxy.start()
    proxied_url = harness.infra.amqp_url.replace(
        f"{broker.hostname}:{broker.port or 5672}", f"127.0.0.1:{proxy.port}"
    )
    try:
        await harness.start_consumer()
        await harness.start_relay(amqp_url=proxied_url, sweep_seconds=0.2)
        await harness.write_debtors(5)
        await eventually(lambda: _count_is(harness, 5), what="events before the cut")

        await proxy.cut()
        written_during_outage = await harness.write_debtors(40)
        await asyncio.sleep(1.5)
        assert await harness.pending_outbox() == 40, "nothing can leave while the broker is unreachable"

        proxy.restore()
        await eventually(
            lambda: _count_is(harness, 45), timeout=60, what="every event after the broker came back"
        )
        await asyncio.sleep(1.0)
        effects = await harness.effects()
        assert len(effects) == 45
        assert len({row["debtor_id"] for row in effects}) == 45, "an event was applied twice"
        assert set(written_during_outage) <= {row["debtor_id"] for row in effects}
        assert await harness.pending_outbox() == 0
        assert proxy.connections_made >= 2, "the publisher reconnected through the proxy"
    finally:
        await proxy.stop()


class DiesBeforeAck(EventConsumer):
    """Commits its transaction, then loses its connection instead of acknowledging (a crash)."""

    died = 0

    async def _acknowledge(self, message: AbstractIncomingMessage) -> None:
        if DiesBeforeAck.died == 0:
            DiesBeforeAck.died += 1
            await message.channel.close()  # the broker takes the unacked message back
            return
        await super()._acknowledge(message)


async def test_consumer_dying_between_commit_and_ack_gets_a_redelivery_that_changes_nothing(
    harness: Harness,
) -> None:
    crashing = await harness.start_consumer(consumer_class=DiesBeforeAck, replica="crashing")
    await harness.start_relay()
    [debtor_id] = await harness.write_debtors(1)

    await eventually(lambda: _count_is(harness, 1), what="the first (crashed) handling committed")
    assert DiesBeforeAck.died == 1

    # The broker takes the unacknowledged message back and delivers it again once the channel is
    # reopened (aio-pika's robust channel resumes the consumer): the inbox already holds its id.
    async def redelivered() -> bool:
        return harness.consumed("crashing", "duplicate") == 1

    await eventually(redelivered, what="the redelivery was recognised as a duplicate")
    await crashing.stop(timeout=2)
    assert await _queue_is_empty(harness), "the redelivery was acknowledged"
    effects = await harness.effects()
    assert [row["debtor_id"] for row in effects] == [debtor_id]
    assert await harness.consumer.fetchval("SELECT count(*) FROM inbox") == 1


async def test_poison_message_is_dead_lettered_after_the_delivery_limit_and_does_not_block_others(
    harness: Harness,
) -> None:
    attempts: list[uuid.UUID] = []

    async def fail_on_poison(event: DebtorUpserted, envelope: Envelope, uow: UnitOfWork) -> None:
        if event.name == "poison":
            attempts.append(envelope.event_id)
            raise ValueError("this debtor can never be handled")
        await uow.conn.execute(
            "INSERT INTO effects (debtor_id, event_id) VALUES ($1, $2)", event.debtor_id, envelope.event_id
        )

    consumer = await harness.start_consumer(fail_on_poison, delivery_limit=3)
    await harness.start_relay()
    await harness.write_debtors(1, name="poison")
    good = await harness.write_debtors(10)

    await eventually(lambda: _count_is(harness, 10), what="the messages behind the poison were handled")

    async def dead_lettered() -> bool:
        return await consumer.dead_letter_depth() == 1

    await eventually(dead_lettered, what="the poison message reached the dead-letter queue")
    assert {row["debtor_id"] for row in await harness.effects()} == set(good)
    # delivered once, then returned `delivery_limit` times before RabbitMQ dead-lettered it
    assert len(attempts) == 3 + 1
    dead = await _get_one(harness, dead_letter_queue_name(harness.queue))
    assert json.loads(dead.body)["payload"]["name"] == "poison"


async def test_unknown_event_version_is_dead_lettered_at_once(harness: Harness) -> None:
    consumer = await harness.start_consumer()
    connection = await aio_pika.connect(harness.infra.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(harness.exchange)
        envelope = Envelope(
            type="invoices.debtor_upserted", version=99, producer="future", correlation_id="c", payload={}
        )
        # Bound under v1 so that it reaches this consumer, yet it says it is version 99.
        await exchange.publish(
            aio_pika.Message(envelope.model_dump_json().encode(), message_id=str(envelope.event_id)),
            routing_key="invoices.debtor_upserted.v1",
        )
    finally:
        await connection.close()

    async def dead_lettered() -> bool:
        return await consumer.dead_letter_depth() == 1

    await eventually(dead_lettered, what="the unknown version was dead-lettered")
    assert await harness.effects() == []


async def test_two_replicas_share_the_queue_and_apply_each_event_once(harness: Harness) -> None:
    async def slow_effect(replica: str):
        async def handler(event: DebtorUpserted, envelope: Envelope, uow: UnitOfWork) -> None:
            await asyncio.sleep(0.01)  # long enough for the broker to spread the work
            await uow.conn.execute(
                "INSERT INTO effects (debtor_id, event_id, replica) VALUES ($1, $2, $3)",
                event.debtor_id,
                envelope.event_id,
                replica,
            )

        return handler

    await harness.start_consumer(await slow_effect("one"), replica="one")
    await harness.start_consumer(await slow_effect("two"), replica="two")
    await harness.start_relay()
    await harness.start_relay()  # two relays on one outbox as well
    ids = await harness.write_debtors(200)

    await eventually(lambda: _count_is(harness, 200), timeout=60, what="all 200 events applied")
    await asyncio.sleep(0.5)
    effects = await harness.effects()
    assert len(effects) == 200
    assert {row["debtor_id"] for row in effects} == set(ids)
    by_replica = {r: sum(1 for row in effects if row["replica"] == r) for r in ("one", "two")}
    assert by_replica["one"] > 0, by_replica
    assert by_replica["two"] > 0, by_replica


async def test_unroutable_event_stays_in_the_outbox_with_its_error(harness: Harness) -> None:
    # Nobody is bound to the exchange: the broker returns the message and the row must stay pending.
    publisher = Publisher(harness.infra.amqp_url, harness.exchange, connection_name="test-unroutable")
    await publisher.start()
    try:
        relay = OutboxRelay(harness.producer, publisher, listen_dsn=harness.producer_url)
        await harness.write_debtors(1)
        assert await relay.publish_pending() == 0
        row = await harness.producer.fetchrow("SELECT published_at, attempts, last_error FROM outbox")
        assert row["published_at"] is None
        assert row["attempts"] == 1
        assert "UnroutableEvent" in row["last_error"]
    finally:
        await publisher.close()


async def test_migrations_started_twice_at_once_apply_each_file_once(infra) -> None:
    url = infra.db_url("migrations_race")
    await db.ensure_database(url)
    namespaces = {"plumbing": db.PLUMBING_MIGRATIONS}
    first, second = await asyncio.gather(db.migrate(url, namespaces), db.migrate(url, namespaces))
    assert sorted(first + second) == ["plumbing/0001_outbox_inbox.sql"]
    conn = await db.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()


async def _count_is(harness: Harness, expected: int) -> bool:
    return len(await harness.effects()) >= expected


async def _queue_is_empty(harness: Harness) -> bool:
    connection = await aio_pika.connect(harness.infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(harness.queue, passive=True)
        return queue.declaration_result.message_count == 0
    finally:
        await connection.close()


async def _get_one(harness: Harness, queue_name: str) -> AbstractIncomingMessage:
    connection = await aio_pika.connect(harness.infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        message = await queue.get(no_ack=True, fail=True)
        assert message is not None
        return message
    finally:
        await connection.close()
