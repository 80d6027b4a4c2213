"""The outbox relay: publishes committed events with publisher confirms, then marks them sent.

It wakes on PostgreSQL's NOTIFY (sent by a trigger when rows are committed) and on a periodic sweep that
covers missed notifications and retries. Rows are claimed with `FOR UPDATE SKIP LOCKED` inside a
transaction that lasts until their confirms arrive, so several replicas share the work without sending a
row twice at the same time. A crash between confirm and commit sends a row again later: consumers are
idempotent by event id, so "at least once" is enough.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import asyncpg

from shared.plumbing.bus import OutgoingMessage, Publisher, UnroutableEvent
from shared.plumbing.db import listen_forever
from shared.plumbing.logging import get_logger
from shared.plumbing.metrics import Metrics

log = get_logger(__name__)

NOTIFY_CHANNEL = "outbox"
MAX_BACKOFF_SECONDS = 30.0


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        listen_dsn: str,
        sweep_seconds: float = 2.0,
        batch_size: int = 200,
        retention_seconds: float = 3600.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._listen_dsn = listen_dsn
        self._sweep_seconds = sweep_seconds
        self._batch_size = batch_size
        self._retention_seconds = retention_seconds
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publish until `stop()` (or cancellation); survives broker and database outages."""
        listener = asyncio.create_task(
            listen_forever(self._listen_dsn, NOTIFY_CHANNEL, self._wake.set), name="outbox-listener"
        )
        failures = 0
        sweeps = 0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    published = await self.publish_pending()
                    failures = 0
                    sweeps += 1
                    if sweeps % 100 == 0:
                        await self.forget_published()
                except Exception as error:
                    failures += 1
                    pause = min(0.25 * (2**failures), MAX_BACKOFF_SECONDS)
                    log.warning("outbox_relay_failed", error=repr(error), retry_in=pause)
                    # Waiting on the wake event (not a bare sleep) lets stop() cut the pause short.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), pause)
                    continue
                if published >= self._batch_size:
                    continue  # more is waiting: no pause
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._sweep_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def stop(self, task: asyncio.Task[None], timeout: float) -> None:
        """Let the batch in hand finish (its confirms and its commit), then publish what is left.

        Called after the requests and messages that were in flight have committed, so their events
        leave now rather than at the next start. Whatever cannot leave before `timeout` (a broker
        outage, a huge backlog) stays in the outbox for another replica or the next start: never lost.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        self._stopping = True
        self._wake.set()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(asyncio.shield(task), max(deadline - loop.time(), 0.1))
        except TimeoutError:
            task.cancel()  # a stuck batch: its transaction rolls back, its rows stay pending
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except Exception as error:
            log.warning("outbox_relay_ended_with_error", error=repr(error))
        left = 0
        try:
            while (remaining := deadline - loop.time()) > 0:
                sent = await asyncio.wait_for(self.publish_pending(), remaining)
                if sent < self._batch_size:
                    break
        except Exception as error:
            log.warning("outbox_final_pass_failed", error=repr(error))
        with contextlib.suppress(Exception):
            left = await self.backlog()
        log.info("outbox_relay_stopped", left_in_outbox=left)

    async def publish_pending(self) -> int:
        """Publish one batch of due rows; returns how many were confirmed."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, event_id, event_type, routing_key, envelope
                FROM outbox
                WHERE published_at IS NULL AND next_attempt_at <= now()
                ORDER BY id
                LIMIT $1
                FOR UPDATE SKIP LOCKED
                """,
                self._batch_size,
            )
            if not rows:
                return 0
            messages = [_message_from_row(row) for row in rows]
            results = await self._publisher.publish_many(messages)
            sent = [row["id"] for row, error in zip(rows, results, strict=True) if error is None]
            failed = [(row, result) for row, result in zip(rows, results, strict=True) if result is not None]
            if sent:
                await conn.execute(
                    "UPDATE outbox SET published_at = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])",
                    sent,
                )
            for row, failure in failed:
                await self._postpone(conn, row, failure)
        if self._metrics:
            for row, result in zip(rows, results, strict=True):
                if result is None:
                    self._metrics.events_published.labels(type=row["event_type"]).inc()
        if sent:
            log.debug("outbox_published", count=len(sent))
        if failed and not sent and not any(isinstance(e, UnroutableEvent) for _, e in failed):
            # Nothing went through and it was not a routing matter: the broker is likely away.
            raise ConnectionError(f"publishing failed: {failed[0][1]!r}")
        return len(sent)

    async def _postpone(self, conn: Any, row: Any, error: BaseException) -> None:
        log.warning(
            "event_publish_failed",
            event_id=str(row["event_id"]),
            event_type=row["event_type"],
            error=repr(error),
        )
        await conn.execute(
            """
            UPDATE outbox
            SET attempts = attempts + 1,
                last_error = $2,
                next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes')
            WHERE id = $1
            """,
            row["id"],
            repr(error)[:500],
        )

    async def forget_published(self) -> int:
        """Delete rows published longer ago than the retention (they served debugging only)."""
        status: str = await self._pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            self._retention_seconds,
        )
        return int(status.split()[-1])

    async def backlog(self) -> int:
        count: int = await self._pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        return count

    async def backlog_and_age(self) -> tuple[int, float]:
        """Rows waiting, and how long the oldest has waited (seconds; 0 when none waits).

        The age tells a slow relay from a stuck one: a backlog that is large but young is a burst being
        worked through; an old one means events are not leaving (broker away, unroutable events).
        """
        row = await self._pool.fetchrow(
            "SELECT count(*) AS waiting, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age"
            " FROM outbox WHERE published_at IS NULL"
        )
        return int(row["waiting"]), float(row["age"])


def _message_from_row(row: Any) -> OutgoingMessage:
    envelope = row["envelope"]
    return OutgoingMessage(
        event_id=str(row["event_id"]),
        event_type=row["event_type"],
        version=int(envelope["version"]),
        routing_key=row["routing_key"],
        correlation_id=str(envelope["correlation_id"]),
        body=json.dumps(envelope, separators=(",", ":")).encode(),
    )
