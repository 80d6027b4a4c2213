"""RabbitMQ on aio-pika: one durable topic exchange, a publisher with confirms, per-service consumers.

Publishing and consuming use separate connections so that flow control on a busy publisher never stalls
the consumers (RabbitMQ blocks publishing connections under memory pressure). Both are robust connections:
aio-pika reconnects them and re-declares exchanges, queues, bindings and consumers after an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection, AbstractRobustExchange

from shared.plumbing.logging import get_logger

log = get_logger(__name__)

DEAD_LETTER_SUFFIX = ".dlx"
RECONNECT_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class OutgoingMessage:
    event_id: str
    event_type: str
    version: int
    routing_key: str
    correlation_id: str
    body: bytes


class UnroutableEvent(RuntimeError):
    """The broker confirmed that no queue is bound for this routing key: the event would vanish."""


def dead_letter_exchange_name(exchange: str) -> str:
    return exchange + DEAD_LETTER_SUFFIX


def dead_letter_queue_name(queue: str) -> str:
    return queue + ".dead"


async def connect(amqp_url: str, *, connection_name: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(
        amqp_url,
        client_properties={"connection_name": connection_name},
        reconnect_interval=RECONNECT_INTERVAL_SECONDS,
        fail_fast=True,
    )


async def declare_exchange(channel: AbstractRobustChannel, name: str) -> AbstractRobustExchange:
    # A robust channel gives robust exchanges (re-declared after a reconnection).
    return await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)


class Publisher:
    """Publishes persistent messages with publisher confirms; an unroutable message raises."""

    def __init__(self, amqp_url: str, exchange: str, *, connection_name: str, timeout: float = 10.0) -> None:
        self._amqp_url = amqp_url
        self._exchange_name = exchange
        self._connection_name = connection_name
        self._timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractRobustExchange | None = None

    async def start(self) -> None:
        self._connection = await connect(self._amqp_url, connection_name=self._connection_name)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare_exchange(channel, self._exchange_name)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed and self._exchange is not None

    async def publish(self, message: OutgoingMessage) -> None:
        if self._exchange is None:
            raise RuntimeError("publisher not started")
        amqp_message = aio_pika.Message(
            message.body,
            message_id=message.event_id,
            type=message.event_type,
            correlation_id=message.correlation_id,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"version": message.version},
        )
        try:
            await self._exchange.publish(
                amqp_message, routing_key=message.routing_key, mandatory=True, timeout=self._timeout
            )
        except aio_pika.exceptions.PublishError as error:
            if getattr(error.frame, "reply_code", None) == 312:  # NO_ROUTE
                raise UnroutableEvent(f"no queue is bound for {message.routing_key}") from error
            raise

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Publish concurrently (confirms are pipelined); one result per message, None when confirmed."""
        results = await asyncio.gather(*(self.publish(m) for m in messages), return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]


def quorum_queue_arguments(queue: str, exchange: str, delivery_limit: int) -> dict[str, Any]:
    """A durable quorum queue whose poison messages go to the service's own dead-letter queue."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": dead_letter_exchange_name(exchange),
        "x-dead-letter-routing-key": queue,
        # At-least-once dead-lettering (RabbitMQ >= 3.10): a poison message is never dropped on the way.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
