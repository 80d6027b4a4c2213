"""`python -m tools.deadletters`: look at a service's dead-letter queue, replay or discard what it holds.

    python -m tools.deadletters list    --service notifier [--limit 50] [--json]
    python -m tools.deadletters replay  --service notifier [--event-id ID ...] [--limit 50]
    python -m tools.deadletters discard --service notifier --event-id ID [--event-id ID ...]

The broker comes from `--amqp-url` or PORTAIL_AMQP_URL, the queue names from `--queue-prefix` (the
services' QUEUE_PREFIX setting, `portail` by default): a service's queue is `<prefix>.<service>`, its
dead-letter queue `<prefix>.<service>.dead` (see shared/plumbing/bus.py).

Replaying sends each message back to the queue of the service that dead-lettered it (through the default
exchange), unchanged: same body, same message id (the event id, so the service's inbox still recognises an
event it has already handled), type, correlation id and version header. It goes to that queue rather than
through the topic exchange because the exchange would hand the event to every other subscriber again: they
would ignore it thanks to their inbox, but a replay should only touch the service that failed. The
dead-lettered copy is acknowledged only after the broker has confirmed the new one, so a replay cut short
leaves each message in one of the two queues, never in neither.

Listing takes the messages and gives them back (the channel closes without acknowledging them): it changes
nothing but each message's delivery count in the dead-letter queue.

This tool talks to RabbitMQ only and imports no service: it works on any service's queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.plumbing.bus import dead_letter_queue_name

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
# Headers RabbitMQ adds when it dead-letters or counts deliveries: a replayed message starts afresh.
_BROKER_HEADERS = ("x-death", "x-delivery-count")
_BROKER_HEADER_PREFIXES = ("x-first-death-", "x-last-death-")


class DeadLetterError(RuntimeError):
    """What the operator must fix before the command can work (wrong name, broker away…)."""


@dataclass(frozen=True)
class DeadLetter:
    """What an operator needs to know about one dead-lettered message."""

    event_id: str | None
    event_type: str | None
    version: int | None
    routing_key: str | None  # the one it was first published with
    reason: str | None  # rejected (unreadable, permanent failure) or delivery_limit (kept failing)
    deaths: int
    dead_lettered_at: str | None
    from_queue: str | None
    correlation_id: str | None
    town_id: str | None
    replays: int

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        headers: dict[str, Any] = dict(message.headers or {})
        death_list = headers.get("x-death")
        deaths: list[dict[str, Any]] = [
            d for d in (death_list if isinstance(death_list, list) else []) if isinstance(d, dict)
        ]
        first = deaths[-1] if deaths else {}  # RabbitMQ puts the most recent death first
        keys = first.get("routing-keys")
        keys = keys if isinstance(keys, list) else []
        when = first.get("time")
        version = headers.get("version")
        town_id = None
        with contextlib.suppress(ValueError, AttributeError):
            town_id = json.loads(message.body).get("town_id")
        return cls(
            event_id=message.message_id,
            event_type=message.type,
            version=version if isinstance(version, int) else None,
            routing_key=_text(keys[0]) if keys else None,
            reason=_text(headers.get("x-first-death-reason") or first.get("reason")),
            deaths=sum(_count(d.get("count", 1)) for d in deaths),
            dead_lettered_at=_utc(when),
            from_queue=_text(headers.get("x-first-death-queue") or first.get("queue")),
            correlation_id=message.correlation_id,
            town_id=str(town_id) if town_id else None,
            replays=_count(headers.get("x-replays")),
        )

    def describe(self) -> str:
        lines = [
            f"event {self.event_id}  {self.event_type} v{self.version}  (published as {self.routing_key})",
            f"    reason: {self.reason}, dead-lettered {self.deaths} time(s) from {self.from_queue}"
            f" at {self.dead_lettered_at}; replayed {self.replays} time(s) before",
            f"    town {self.town_id}; correlation id {self.correlation_id}"
            " (grep the service's logs for it, or for the event id, to read the error)",
        ]
        return "\n".join(lines)


def _utc(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    # AMQP timestamps are seconds since the epoch, UTC; the client may hand them over naive.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def replayed_copy(message: AbstractIncomingMessage, dead_queue: str) -> aio_pika.Message:
    """The message as it was first published, plus a count of replays (for the next operator)."""
    headers = {
        key: value
        for key, value in (message.headers or {}).items()
        if key not in _BROKER_HEADERS and not key.startswith(_BROKER_HEADER_PREFIXES)
    }
    headers["x-replays"] = _count(headers.get("x-replays")) + 1
    headers["x-replayed-from"] = dead_queue
    return aio_pika.Message(
        message.body,
        message_id=message.message_id,
        type=message.type,
        correlation_id=message.correlation_id,
        content_type=message.content_type or "application/json",
        timestamp=message.timestamp,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,
    )


class DeadLetterQueue:
    """One service's dead-letter queue, opened for a command."""

    def __init__(self, amqp_url: str, queue_prefix: str, service: str) -> None:
        self.amqp_url = amqp_url
        self.queue = f"{queue_prefix}.{service}"
        self.dead_queue = dead_letter_queue_name(self.queue)
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._dead: AbstractQueue | None = None

    async def __aenter__(self) -> DeadLetterQueue:
        try:
            self._connection = await aio_pika.connect(
                self.amqp_url, client_properties={"connection_name": "deadletters"}
            )
        except Exception as error:
            raise DeadLetterError(f"cannot reach RabbitMQ at {_safe(self.amqp_url)}: {error!r}") from None
        try:
            self._dead = await self._queue(self.dead_queue)
            # The service's queue must exist too: replaying into nothing would lose the messages.
            await self._queue(self.queue)
        except aio_pika.exceptions.ChannelClosed:
            await self._connection.close()
            raise DeadLetterError(
                f"no queue {self.dead_queue} (or {self.queue}) on this broker: check --service and"
                " --queue-prefix (the services' QUEUE_PREFIX); the queues exist once the service has started"
            ) from None
        self._publishing = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        return self

    async def _queue(self, name: str) -> AbstractQueue:
        """A passive declare: the queue as it is, or ChannelClosed (NOT_FOUND), which closes its channel."""
        assert self._connection is not None
        channel = await self._connection.channel()
        try:
            return await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            with contextlib.suppress(Exception):
                await channel.close()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        # Closing without acknowledging gives back every message taken and not settled.
        if self._connection is not None:
            await self._connection.close()

    @property
    def depth(self) -> int:
        assert self._dead is not None
        return int(self._dead.declaration_result.message_count or 0)

    async def take(self, limit: int) -> list[AbstractIncomingMessage]:
        """Take up to `limit` messages without settling them (they stay ours until acked or closed)."""
        assert self._dead is not None
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < limit:
            message = await self._dead.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(message)
        return taken

    async def replay(self, message: AbstractIncomingMessage) -> None:
        assert self._publishing is not None
        # mandatory + confirms: raises unless the broker has the copy safely in the service's queue.
        await self._publishing.default_exchange.publish(
            replayed_copy(message, self.dead_queue), routing_key=self.queue, mandatory=True, timeout=30
        )
        await message.ack()


def _safe(url: str) -> str:
    """The broker's address without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return url


def _selected(
    messages: Sequence[AbstractIncomingMessage], event_ids: Sequence[str]
) -> list[AbstractIncomingMessage]:
    if not event_ids:
        return list(messages)
    wanted = set(event_ids)
    return [m for m in messages if m.message_id in wanted]


async def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    def say(text: str) -> None:
        print(text, file=out, flush=True)

    def report(kind: str, letter: DeadLetter, **extra: Any) -> None:
        if args.json:
            say(json.dumps({"action": kind, **asdict(letter), **extra}))
        else:
            say(f"{kind}: {letter.describe()}" + (f"\n    {extra}" if extra else ""))

    async with DeadLetterQueue(args.amqp_url, args.queue_prefix, args.service) as dlq:
        taken = await dlq.take(args.limit)
        if not args.json:
            say(f"{dlq.dead_queue}: {dlq.depth} message(s) waiting; looking at {len(taken)}")
        if args.command == "list":
            for message in taken:
                report("dead", DeadLetter.of(message))
            return 0
        chosen = _selected(taken, args.event_id)
        missing = set(args.event_id) - {m.message_id for m in chosen}
        failures = 0
        for message in chosen:
            letter = DeadLetter.of(message)
            if args.command == "discard":
                await message.ack()
                report("discarded", letter)
                continue
            try:
                await dlq.replay(message)
            except Exception as error:  # left in the dead-letter queue; say why and go on
                failures += 1
                report("not_replayed", letter, error=repr(error))
                continue
            report("replayed", letter, to_queue=dlq.queue)
        for event_id in sorted(missing):
            failures += 1
            say(
                json.dumps({"action": "not_found", "event_id": event_id})
                if args.json
                else f"not found: {event_id}"
            )
        return 1 if failures else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m tools.deadletters", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("list", "show the messages waiting in a service's dead-letter queue (changes nothing)"),
        (
            "replay",
            "send messages back to the service's queue, acknowledging each dead copy after the confirm",
        ),
        ("discard", "drop messages for good (only those named with --event-id)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--service", required=True, help="auth, invoices, payments or notifier")
        command.add_argument("--limit", type=int, default=100, help="look at this many messages at most")
        command.add_argument(
            "--event-id",
            action="append",
            default=[],
            required=name == "discard",
            help="only this event (repeatable); replay and discard otherwise take every message looked at",
        )
        command.add_argument(
            "--amqp-url", default=os.environ.get("PORTAIL_AMQP_URL", DEFAULT_AMQP_URL), help="the broker"
        )
        command.add_argument(
            "--queue-prefix",
            default=os.environ.get("PORTAIL_QUEUE_PREFIX", "portail"),
            help="the services' QUEUE_PREFIX setting",
        )
        command.add_argument("--json", action="store_true", help="one JSON object per message")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.limit < 1:
        parser().error("--limit must be at least 1")
    try:
        return asyncio.run(run(args))
    except DeadLetterError as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
