"""The dead-letter command on messages the real services dead-lettered: it lists them with their reason
without consuming them, replays one whose cause was fixed so that its effect happens once, and discards
one that can never succeed."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from shared.contracts import Envelope
from shared.contracts.events import ActivationRequested, TownConfigured
from tests.operations.support import count, eventually, publish_events, scrape, small_pools, total
from tests.support.infra import Infra
from tests.support.suite import Suite, start_suite, stop_suite
from tools.processes import ROOT


@pytest.fixture(scope="module")
async def own_suite(infra: Infra) -> AsyncIterator[Suite]:
    # Two deliveries before a failing message is dead-lettered, so the test does not wait long.
    limit = {"notifier": {"NOTIFIER_DELIVERY_LIMIT": "2"}, "auth": {"AUTH_DELIVERY_LIMIT": "2"}}
    suite = await start_suite(infra, name="deadletters", extra_env=small_pools(**limit))
    yield suite
    await stop_suite(suite)


async def deadletters(suite: Suite, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run the operator's command as a separate process, as an operator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.deadletters",
        *args,
        "--amqp-url",
        suite.config.amqp_url,
        "--queue-prefix",
        suite.config.queue_prefix,
        "--json",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert process.returncode is not None
    return process.returncode, lines, err.decode()


async def dead_letter_depth(suite: Suite, service: str) -> float:
    return total(await scrape(suite.url(service)), "portail_dead_letter_depth")


async def test_unreadable_event_is_listed_with_its_reason_without_being_consumed_then_discarded(
    own_suite: Suite,
) -> None:
    suite = own_suite
    # A producer from the future: the routing key auth is bound to, a version auth does not know.
    envelope = Envelope(
        type="invoices.debtor_upserted",
        version=99,
        producer="invoices",
        correlation_id="corr-v99",
        payload={},
    )
    connection = await aio_pika.connect(suite.config.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(suite.config.exchange)
        await exchange.publish(
            aio_pika.Message(
                envelope.model_dump_json().encode(),
                message_id=str(envelope.event_id),
                type=envelope.type,
                correlation_id=envelope.correlation_id,
                headers={"version": 99},
            ),
            routing_key="invoices.debtor_upserted.v1",
        )
    finally:
        await connection.close()

    async def dead_lettered() -> bool:
        return await dead_letter_depth(suite, "auth") == 1

    await eventually(dead_lettered, what="auth dead-lettered the unknown version (and its metric says so)")

    for _ in range(2):  # listing twice shows the same message: listing consumes nothing
        code, lines, err = await deadletters(suite, "list", "--service", "auth")
        assert code == 0, err
        [dead] = lines
        assert dead["action"] == "dead"
        assert dead["event_id"] == str(envelope.event_id)
        assert dead["event_type"] == "invoices.debtor_upserted"
        assert dead["version"] == 99
        assert dead["routing_key"] == "invoices.debtor_upserted.v1"
        assert dead["reason"] == "rejected"
        assert dead["from_queue"] == f"{suite.config.queue_prefix}.auth"
        assert dead["correlation_id"] == "corr-v99"
    assert await dead_letter_depth(suite, "auth") == 1

    code, lines, err = await deadletters(
        suite, "discard", "--service", "auth", "--event-id", str(envelope.event_id)
    )
    assert code == 0, err
    assert [(line["action"], line["event_id"]) for line in lines] == [("discarded", str(envelope.event_id))]
    assert await dead_letter_depth(suite, "auth") == 0


async def test_event_that_failed_for_a_cause_since_fixed_is_handled_once_when_replayed(
    own_suite: Suite,
) -> None:
    suite = own_suite
    town_id = uuid.uuid4()
    address = f"habitant.{town_id.hex[:6]}@example.org"
    # Events are not ordered: the notifier hears of an activation request before it knows the town,
    # retries, and past its delivery limit the message is dead-lettered.
    [event_id] = await publish_events(
        suite,
        [ActivationRequested(town_id=town_id, email=address, outcome="unknown_address")],
        producer="auth",
    )

    async def dead_lettered() -> bool:
        return await dead_letter_depth(suite, "notifier") == 1

    await eventually(dead_lettered, what="the notifier dead-lettered the event after its delivery limit")
    metrics = await scrape(suite.url("notifier"))
    assert total(metrics, "portail_events_failed_total", fate="retried") >= 1
    assert total(metrics, "portail_events_failed_total", fate="dead_lettered") >= 1
    code, lines, err = await deadletters(suite, "list", "--service", "notifier")
    assert code == 0, err
    [dead] = lines
    assert (dead["event_id"], dead["reason"], dead["town_id"]) == (event_id, "delivery_limit", str(town_id))
    assert suite.mail.to(address) == []

    # The cause goes away: the town's settings arrive.
    await publish_events(
        suite,
        [
            TownConfigured(
                town_id=town_id,
                slug="t" + town_id.hex[:7],
                name="Commune de Rejeu",
                public_url="http://rejeu.localhost",
                hosts=["rejeu.localhost"],
                contact_email="factures@rejeu.localhost",
                alerts_enabled=True,
                password_min_length=8,
            )
        ],
        producer="invoices",
    )

    async def town_known() -> bool:
        return await count(suite, "notifier", "SELECT count(*) FROM towns WHERE town_id = $1", town_id) == 1

    await eventually(town_known, what="the notifier learnt the town")

    code, lines, err = await deadletters(suite, "replay", "--service", "notifier")
    assert code == 0, err
    [replayed] = lines
    assert (replayed["action"], replayed["event_id"]) == ("replayed", event_id)
    [mail] = await suite.wait_for_mail(address)
    assert "Commune de Rejeu" in mail.part("plain")
    assert await dead_letter_depth(suite, "notifier") == 0

    # A second copy of the same event (an operator replaying twice, a redelivery) changes nothing.
    await _send_again(suite, event_id, town_id, address)

    async def seen_twice() -> bool:
        metrics = await scrape(suite.url("notifier"))
        return total(metrics, "portail_events_consumed_total", outcome="duplicate") >= 1

    await eventually(seen_twice, what="the notifier recognised the second copy")
    await asyncio.sleep(1.0)
    assert len(suite.mail.to(address)) == 1
    code, lines, _ = await deadletters(suite, "replay", "--service", "notifier")
    assert (code, lines) == (0, [])


async def _send_again(suite: Suite, event_id: str, town_id: uuid.UUID, address: str) -> None:
    envelope = Envelope(
        event_id=uuid.UUID(event_id),
        type=ActivationRequested.event_type,
        version=1,
        town_id=town_id,
        producer="auth",
        correlation_id="again",
        payload={"town_id": str(town_id), "email": address, "outcome": "unknown_address"},
    )
    connection = await aio_pika.connect(suite.config.amqp_url)
    try:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(envelope.model_dump_json().encode(), message_id=event_id, type=envelope.type),
            routing_key=f"{suite.config.queue_prefix}.notifier",
        )
    finally:
        await connection.close()


async def test_unknown_service_fails_with_what_to_check(own_suite: Suite) -> None:
    code, lines, err = await deadletters(own_suite, "list", "--service", "nosuchservice")
    assert code == 2
    assert lines == []
    assert "--queue-prefix" in err
    assert "Traceback" not in err
