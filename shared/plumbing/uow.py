"""A unit of work: one connection, one transaction, and the events that transaction produces.

Events go into the outbox table through the same connection, so they are committed with the state change
they describe or not at all (eShop's lesson). Services subclass it to hang their repositories off it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self, TypeAlias

import asyncpg

from shared.contracts import Envelope, EventPayload, envelope_for
from shared.plumbing.logging import current_correlation_id

# An asyncpg connection or pool proxy (asyncpg ships no type information, hence Any).
Connection: TypeAlias = Any


class UnitOfWork:
    # Above this many events COPY beats a multi-row INSERT (large invoice imports).
    _COPY_THRESHOLD = 200

    def __init__(self, pool: asyncpg.Pool, *, producer: str, transactional: bool = True) -> None:
        """`transactional=False` is for reads only (a page's queries): no BEGIN/COMMIT round trips, and
        publishing is refused since nothing would be atomic with it."""
        self._pool = pool
        self.producer = producer
        self._transactional = transactional
        self._conn: Connection | None = None
        self._transaction: asyncpg.transaction.Transaction | None = None

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._pool.acquire()
        try:
            if self._transactional:
                self._transaction = self._conn.transaction()
                await self._transaction.start()
            self.on_begin(self._conn)
        except BaseException:
            await self._pool.release(self._conn)
            self._conn = None
            raise
        return self

    def on_begin(self, conn: Connection) -> None:
        """Subclasses build their repositories on `conn` here."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        try:
            if self._transaction is not None:  # None: a read-only unit of work, nothing to end
                if exc_type is None:
                    await self._transaction.commit()
                else:
                    await self._transaction.rollback()
        finally:
            await self._pool.release(self._conn)
            self._conn = None
            self._transaction = None

    async def publish(self, *payloads: EventPayload, town_id: uuid.UUID | None = None) -> list[Envelope]:
        """Write events to the outbox in this transaction; the relay sends them after commit."""
        return await self.publish_many(payloads, town_id=town_id)

    async def publish_many(
        self, payloads: Iterable[EventPayload], *, town_id: uuid.UUID | None = None
    ) -> list[Envelope]:
        if not self._transactional:
            raise RuntimeError("events are written in a transaction: this unit of work only reads")
        correlation_id = current_correlation_id()
        envelopes = [
            envelope_for(payload, producer=self.producer, correlation_id=correlation_id, town_id=town_id)
            for payload in payloads
        ]
        if not envelopes:
            return envelopes
        # The pool's jsonb codec (binary, which COPY needs) serialises the envelope dicts.
        records = [
            (env.event_id, env.type, env.routing_key, env.model_dump(mode="json")) for env in envelopes
        ]
        if len(records) >= self._COPY_THRESHOLD:
            await self.conn.copy_records_to_table(
                "outbox", records=records, columns=["event_id", "event_type", "routing_key", "envelope"]
            )
        else:
            await self.conn.executemany(
                "INSERT INTO outbox (event_id, event_type, routing_key, envelope) VALUES ($1, $2, $3, $4)",
                records,
            )
        return envelopes

    async def record_handled(self, envelope: Envelope) -> bool:
        """Record an incoming event id; False if it was already handled (a redelivery: do nothing)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO inbox (event_id, event_type) VALUES ($1, $2)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING true",
            envelope.event_id,
            envelope.type,
        )
        return bool(inserted)
