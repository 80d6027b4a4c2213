"""E-mails really leave over SMTP: retried with backoff on temporary failures, stored with their state,
at most one per event even when the event is delivered twice, one-time links not kept once sent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika

from shared.contracts import EventPayload, envelope_for, events
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually


async def _publish_twice(suite: Suite, payload: EventPayload) -> uuid.UUID:
    """The same event (same id) delivered twice, as a broker redelivery would."""
    envelope = envelope_for(payload, producer="auth", correlation_id="test-" + uuid.uuid4().hex)
    connection = await aio_pika.connect(suite.infra.amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(suite.config.exchange)
        for _ in range(2):
            await exchange.publish(
                aio_pika.Message(
                    envelope.model_dump_json().encode(),
                    message_id=str(envelope.event_id),
                    type=envelope.type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=envelope.routing_key,
            )
    finally:
        await connection.close()
    return envelope.event_id


async def _town_known_to_notifier(suite: Suite, town: TownHandle) -> None:
    conn = await suite.db("notifier")
    try:

        async def known() -> bool:
            return bool(
                await conn.fetchval("SELECT EXISTS (SELECT 1 FROM towns WHERE town_id = $1)", town.town_id)
            )

        await eventually(known, what="the notifier knows the town")
    finally:
        await conn.close()


async def _email_rows(suite: Suite, event_id: uuid.UUID) -> list[dict[str, object]]:
    conn = await suite.db("notifier")
    try:
        return [
            dict(r)
            for r in await conn.fetch(
                "SELECT state, attempts, last_error, message IS NULL AS blanked FROM emails WHERE event_id = $1",
                event_id,
            )
        ]
    finally:
        await conn.close()


async def test_a_redelivered_event_gives_one_email(suite: Suite) -> None:
    town = await suite.create_town()
    await _town_known_to_notifier(suite, town)
    address = f"twice.{uuid.uuid4().hex[:8]}@example.org"
    event_id = await _publish_twice(
        suite,
        events.PasswordChanged(
            town_id=town.town_id, account_id=uuid.uuid4(), email=address, reason="changed"
        ),
    )
    await suite.wait_for_mail(address)
    await asyncio.sleep(1.0)
    assert len(suite.mail.to(address)) == 1
    assert [r["state"] for r in await _email_rows(suite, event_id)] == ["sent"]


async def test_temporary_smtp_failures_are_retried_then_the_email_is_sent_once(suite: Suite) -> None:
    town = await suite.create_town()
    await _town_known_to_notifier(suite, town)
    address = f"retry.{uuid.uuid4().hex[:8]}@example.org"
    suite.smtp.fail_next(2)
    event_id = await _publish_twice(
        suite,
        events.PasswordChanged(town_id=town.town_id, account_id=uuid.uuid4(), email=address, reason="reset"),
    )
    await suite.wait_for_mail(address, timeout=30)
    [row] = await _email_rows(suite, event_id)
    assert row["state"] == "sent"
    assert row["attempts"] == 3
    assert len(suite.mail.to(address)) == 1


async def test_a_permanent_refusal_is_recorded_with_its_reason(suite: Suite) -> None:
    town = await suite.create_town()
    await _town_known_to_notifier(suite, town)
    address = f"refused.{uuid.uuid4().hex[:8]}@example.org"
    suite.smtp.fail_next(1, "550 5.1.1 Mailbox does not exist")
    event_id = await _publish_twice(
        suite,
        events.PasswordChanged(town_id=town.town_id, account_id=uuid.uuid4(), email=address, reason="reset"),
    )

    async def failed() -> bool:
        rows = await _email_rows(suite, event_id)
        return bool(rows) and rows[0]["state"] == "failed"

    await eventually(failed, what="the e-mail is marked failed")
    [row] = await _email_rows(suite, event_id)
    assert "550" in str(row["last_error"])
    assert suite.mail.to(address) == []


async def test_a_one_time_link_is_not_kept_once_its_email_is_sent(suite: Suite) -> None:
    town = await suite.create_town()
    await _town_known_to_notifier(suite, town)
    address = f"link.{uuid.uuid4().hex[:8]}@example.org"
    event_id = await _publish_twice(
        suite,
        events.ActivationRequested(
            town_id=town.town_id,
            email=address,
            outcome="link",
            link_url=town.public_url + "/compte/activation/" + "A" * 43,
            expires_at=datetime.now(UTC) + timedelta(hours=72),
        ),
    )
    [mail] = await suite.wait_for_mail(address)
    assert "A" * 43 in mail.part("plain")

    async def blanked() -> bool:
        rows = await _email_rows(suite, event_id)
        return bool(rows) and rows[0]["state"] == "sent" and rows[0]["blanked"] is True

    await eventually(blanked, what="the sent message with its link is no longer stored")
