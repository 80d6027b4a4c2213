"""The consuming side: one durable quorum queue per service, handled through an idempotent inbox.

For each message: parse the envelope, pick the handler from the service's subscriptions, then in ONE
transaction record the event id in the inbox and run the handler; ack only after that commit. A
redelivered event finds its id in the inbox and changes nothing. A handler that raises gets the message
back (nack, requeue) after a short pause; past the queue's delivery limit RabbitMQ dead-letters it into the
service's dead-letter queue, and the reason is logged here. A message that can never succeed (unknown
type or version, invalid payload) is dead-lettered at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from pydantic import ValidationError

from shared.contracts import Envelope, EventPayload, UnknownEventType, parse_payload, routing_key
from shared.plumbing.bus import (
    connect,
    dead_letter_exchange_name,
    dead_letter_queue_name,
    declare_exchange,
    quorum_queue_arguments,
)
from shared.plumbing.logging import clean_correlation_id, get_logger, log_context
from shared.plumbing.metrics import Metrics
from shared.plumbing.uow import UnitOfWork

log = get_logger(__name__)

Handler = Callable[[Any, Envelope, Any], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """`handler(payload, envelope, uow)` runs inside the unit of work that also records the event id."""

    model: type[EventPayload]
    handler: Handler

    @property
    def key(self) -> tuple[str, int]:
        return (self.model.event_type, self.model.event_version)

    @property
    def routing_key(self) -> str:
        return routing_key(self.model.event_type, self.model.event_version)


class PermanentFailure(Exception):
    """A handler's way to say "retrying will never help": the message is dead-lettered at once."""


class EventConsumer:
    def __init__(
        self,
        *,
        amqp_url: str,
        exchange: str,
        queue: str,
        subscriptions: Sequence[Subscription],
        uow_factory: Callable[[], UnitOfWork],
        delivery_limit: int,
        prefetch: int,
        connection_name: str,
        metrics: Metrics | None = None,
        retry_pause_seconds: float = 0.2,
    ) -> None:
        self._amqp_url = amqp_url
        self._exchange_name = exchange
        self.queue_name = queue
        self._handlers = {s.key: s for s in subscriptions}
        self._uow_factory = uow_factory
        self._delivery_limit = delivery_limit
        self._prefetch = prefetch
        self._connection_name = connection_name
        self._metrics = metrics
        self._retry_pause = retry_pause_seconds
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._queue: aio_pika.abc.AbstractRobustQueue | None = None
        self._consumer_tag: str | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        self._connection = await connect(self._amqp_url, connection_name=self._connection_name)
        channel: AbstractRobustChannel = await self._connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=self._prefetch)
        exchange = await declare_exchange(channel, self._exchange_name)
        await self._declare_dead_letters(channel)
        queue: aio_pika.abc.AbstractRobustQueue = await channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments=quorum_queue_arguments(self.queue_name, self._exchange_name, self._delivery_limit),
        )
        for subscription in self._handlers.values():
            await queue.bind(exchange, routing_key=subscription.routing_key)
        self._queue = queue
        self._consumer_tag = await queue.consume(self._on_message, no_ack=False)
        log.info("consumer_started", queue=self.queue_name, bindings=sorted(self.routing_keys))

    @property
    def routing_keys(self) -> set[str]:
        return {s.routing_key for s in self._handlers.values()}

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def _declare_dead_letters(self, channel: AbstractRobustChannel) -> None:
        dlx = await channel.declare_exchange(
            dead_letter_exchange_name(self._exchange_name), aio_pika.ExchangeType.DIRECT, durable=True
        )
        dead = await channel.declare_queue(
            dead_letter_queue_name(self.queue_name), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dead.bind(dlx, routing_key=self.queue_name)

    async def stop_consuming(self) -> None:
        """Ask the broker for no more messages; the ones already delivered are still handled and acked.

        Called as soon as the process is told to stop (SIGTERM), so the consumer drains while the HTTP
        side drains too. Messages the broker sends before it confirms the cancel are still handled.
        """
        if self._queue is None or self._consumer_tag is None:
            return
        tag, self._consumer_tag = self._consumer_tag, None
        try:
            await self._queue.cancel(tag)
        except Exception as error:  # the broker may already be gone; the close in stop() still runs
            log.warning("consumer_cancel_failed", queue=self.queue_name, error=repr(error))
        log.info("consumer_cancelled", queue=self.queue_name, in_flight=self._in_flight)

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop taking messages, let the ones in hand finish (commit and ack), then disconnect.

        A message still being handled when `timeout` runs out is abandoned with the connection: its
        transaction rolls back, the broker delivers it again, and the inbox makes that harmless.
        """
        await self.stop_consuming()
        # Deliveries that reached us just before the cancel are tasks not yet started: let them start
        # (and count themselves in flight) before looking at the count.
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("consumer_stop_timed_out", queue=self.queue_name, in_flight=self._in_flight)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        log.info("consumer_stopped", queue=self.queue_name)

    async def dead_letter_depth(self) -> int:
        """How many messages wait in this service's dead-letter queue (a passive declare)."""
        if self._connection is None:
            raise RuntimeError("consumer not started")
        channel = await self._connection.channel()
        try:
            queue = await channel.declare_queue(dead_letter_queue_name(self.queue_name), passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        try:
            with log_context(
                event_id=message.message_id,
                event_type=message.type,
                correlation_id=clean_correlation_id(message.correlation_id),
            ):
                await self._handle(message)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        event_type = message.type or "unknown"
        try:
            envelope = Envelope.model_validate_json(message.body)
            payload = parse_payload(envelope)
            subscription = self._handlers[(envelope.type, envelope.version)]
        except (ValidationError, UnknownEventType, KeyError) as error:
            await self._dead_letter_now(message, event_type, f"unreadable event: {error!r}")
            return

        try:
            async with self._uow_factory() as uow:
                first_time = await uow.record_handled(envelope)
                if first_time:
                    await subscription.handler(payload, envelope, uow)
        except PermanentFailure as error:
            await self._dead_letter_now(message, event_type, str(error))
            return
        except Exception as error:
            await self._retry_later(message, event_type, error)
            return

        await self._acknowledge(message)
        outcome = "handled" if first_time else "duplicate"
        log.info("event_consumed", outcome=outcome)
        if self._metrics:
            self._metrics.events_consumed.labels(type=event_type, outcome=outcome).inc()

    async def _acknowledge(self, message: AbstractIncomingMessage) -> None:
        """Ack after commit. If this never reaches the broker, the redelivery finds the inbox row."""
        await message.ack()

    async def _dead_letter_now(self, message: AbstractIncomingMessage, event_type: str, reason: str) -> None:
        log.error("event_dead_lettered", reason=reason, queue=self.queue_name)
        if self._metrics:
            self._metrics.events_failed.labels(type=event_type, fate="dead_lettered").inc()
        await message.reject(requeue=False)

    async def _retry_later(self, message: AbstractIncomingMessage, event_type: str, error: Exception) -> None:
        # RabbitMQ counts returns in x-delivery-count (absent on the first delivery) and dead-letters
        # the message once that count would go past the queue's x-delivery-limit.
        count = (message.headers or {}).get("x-delivery-count", 0)
        returned_before = count if isinstance(count, int) else 0
        dead_lettered = returned_before + 1 > self._delivery_limit
        if dead_lettered:
            log.error(
                "event_dead_lettered",
                reason=f"handler kept failing: {error!r}",
                deliveries=returned_before + 1,
                queue=self.queue_name,
            )
        else:
            log.warning("event_handling_failed", error=repr(error), deliveries=returned_before + 1)
        if self._metrics:
            fate = "dead_lettered" if dead_lettered else "retried"
            self._metrics.events_failed.labels(type=event_type, fate=fate).inc()
        # A short pause, growing with each return, so a failing dependency is not hammered.
        await asyncio.sleep(min(self._retry_pause * (2**returned_before), 5.0))
        await message.nack(requeue=True)
