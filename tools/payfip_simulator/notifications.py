"""Server-to-server notifications to `urlnotif`, sent by a background task.

The real service sends only the operation id (no result, no signature), zero, one or several times,
before or after the browser returns. The policy below lets tests produce each of those cases.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict, Field
from structlog.typing import FilteringBoundLogger
from yarl import URL

from .state import Clock
from .urls import append_query

NotificationField = Literal["idop", "idOp"]


class NotificationMode(StrEnum):
    NORMAL = "normal"
    # Never notify.
    DROP = "drop"
    # Send `copies` notifications, one after the other.
    DUPLICATE = "duplicate"
    # Wait `delay_seconds` (real time) before sending.
    DELAY = "delay"
    # Hold each notification until the next one comes (then send the newest first) or a flush.
    REORDER = "reorder"


class NotificationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: NotificationMode = NotificationMode.NORMAL
    copies: int = Field(default=2, ge=1, le=20)
    delay_seconds: float = Field(default=1.5, ge=0, le=600)
    field: NotificationField = "idop"
    # Put the id in the query string of an empty POST instead of the form body.
    in_query: bool = False
    # Send (and wait for) the notification before answering the browser's redirect.
    before_redirect: bool = False
    # The real service's retries are undocumented: none unless asked.
    retries: int = Field(default=0, ge=0, le=10)
    retry_delay_seconds: float = Field(default=1.0, ge=0, le=600)


@dataclass(frozen=True)
class Delivery:
    """One notification to send: the same idop may have several (duplicates)."""

    idop: str
    urlnotif: str
    field: NotificationField
    in_query: bool
    mode: NotificationMode
    copy: int
    retries: int
    retry_delay_seconds: float
    scheduled_at: datetime


@dataclass(frozen=True)
class Batch:
    """Deliveries sent one after the other, after an optional wait."""

    deliveries: list[Delivery]
    delay_seconds: float = 0.0


@dataclass
class NotificationAttempt:
    idop: str
    url: str
    field: str
    in_query: bool
    mode: str
    copy: int
    attempt: int
    scheduled_at: datetime
    sent_at: datetime | None = None
    status: int | None = None
    error: str | None = None
    dropped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "idop": self.idop,
            "url": self.url,
            "field": self.field,
            "in_query": self.in_query,
            "mode": self.mode,
            "copy": self.copy,
            "attempt": self.attempt,
            "scheduled_at": self.scheduled_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "status": self.status,
            "error": self.error,
            "dropped": self.dropped,
        }


class NotificationDispatcher:
    """Plans notifications from the policy and sends them from a background worker."""

    def __init__(
        self,
        *,
        default_policy: NotificationPolicy,
        timeout_seconds: float,
        clock: Clock,
        log: FilteringBoundLogger,
    ) -> None:
        self._default_policy = default_policy
        self.policy = default_policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._log = log
        self.attempts: list[NotificationAttempt] = []
        self._held: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[Batch] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    # Life cycle (from the application's cleanup context).

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="payfip-notification-worker")

    async def stop(self) -> None:
        tasks = list(self._in_flight)
        if self._worker is not None:
            tasks.append(self._worker)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reset(self) -> None:
        """Forget attempts, held notifications and pending sends; restore the default policy."""
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        self._held.clear()
        self.attempts.clear()
        self.policy = self._default_policy

    # Policy.

    def update_policy(self, changes: dict[str, Any]) -> NotificationPolicy:
        """Merge `changes` into the current policy (validated like a fresh policy)."""
        self.policy = NotificationPolicy.model_validate(self.policy.model_dump() | changes)
        return self.policy

    @property
    def held_count(self) -> int:
        return len(self._held)

    @property
    def pending_count(self) -> int:
        queued = self._queue.qsize() if self._queue is not None else 0
        return queued + len(self._in_flight)

    # Scheduling.

    async def notify(self, idop: str, urlnotif: str) -> None:
        """Notify that `idop` has a result, as the policy says.

        Returns at once (sending happens in the background) unless the policy asks for the
        notification to go out before the browser is redirected.
        """
        policy = self.policy
        batches = self._plan(idop, urlnotif, policy)
        if policy.before_redirect:
            for batch in batches:
                await self._deliver(batch)
            return
        if self._queue is None:
            raise RuntimeError("notification dispatcher not started")
        for batch in batches:
            self._queue.put_nowait(batch)

    async def flush(self) -> int:
        """Send the held notifications now, newest first; return how many were sent."""
        held = list(reversed(self._held))
        self._held.clear()
        if held:
            await self._deliver(Batch(held))
        return len(held)

    def _plan(self, idop: str, urlnotif: str, policy: NotificationPolicy) -> list[Batch]:
        scheduled_at = self._clock.now()

        def delivery(copy: int) -> Delivery:
            return Delivery(
                idop=idop,
                urlnotif=urlnotif,
                field=policy.field,
                in_query=policy.in_query,
                mode=policy.mode,
                copy=copy,
                retries=policy.retries,
                retry_delay_seconds=policy.retry_delay_seconds,
                scheduled_at=scheduled_at,
            )

        match policy.mode:
            case NotificationMode.DROP:
                self.attempts.append(
                    NotificationAttempt(
                        idop=idop,
                        url=urlnotif,
                        field=policy.field,
                        in_query=policy.in_query,
                        mode=policy.mode.value,
                        copy=1,
                        attempt=0,
                        scheduled_at=scheduled_at,
                        dropped=True,
                    )
                )
                self._log.info("notification_dropped", idop=idop, url=urlnotif)
                return []
            case NotificationMode.DUPLICATE:
                return [Batch([delivery(copy) for copy in range(1, policy.copies + 1)])]
            case NotificationMode.DELAY:
                return [Batch([delivery(1)], delay_seconds=policy.delay_seconds)]
            case NotificationMode.REORDER:
                if not self._held:
                    self._held.append(delivery(1))
                    self._log.info("notification_held", idop=idop, url=urlnotif)
                    return []
                released = [delivery(1), *reversed(self._held)]
                self._held.clear()
                return [Batch(released)]
            case _:
                return [Batch([delivery(1)])]

    # Sending.

    async def _run(self) -> None:
        if self._queue is None:
            raise RuntimeError("notification dispatcher not started")
        while True:
            batch = await self._queue.get()
            # Each batch in its own task so that a delayed one does not hold back the others.
            task = asyncio.create_task(self._deliver(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, batch: Batch) -> None:
        if batch.delay_seconds > 0:
            await asyncio.sleep(batch.delay_seconds)
        for delivery in batch.deliveries:
            await self._send(delivery)

    async def _send(self, delivery: Delivery) -> None:
        if self._session is None:
            raise RuntimeError("notification dispatcher not started")
        parameters: dict[str, str] = {delivery.field: delivery.idop}
        if delivery.in_query:
            url = append_query(delivery.urlnotif, parameters)
            body: dict[str, str] | bytes = b""
        else:
            url = delivery.urlnotif
            body = parameters
        for attempt_number in range(1, delivery.retries + 2):
            attempt = NotificationAttempt(
                idop=delivery.idop,
                url=url,
                field=delivery.field,
                in_query=delivery.in_query,
                mode=delivery.mode.value,
                copy=delivery.copy,
                attempt=attempt_number,
                scheduled_at=delivery.scheduled_at,
            )
            self.attempts.append(attempt)
            try:
                attempt.sent_at = self._clock.now()
                # encoded=True: send the urlnotif exactly as the client gave it, not re-quoted.
                async with self._session.post(URL(url, encoded=True), data=body) as response:
                    attempt.status = response.status
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                attempt.error = f"{type(error).__name__}: {error}".rstrip(": ")
                self._log.warning(
                    "notification_failed",
                    idop=delivery.idop,
                    url=url,
                    attempt=attempt_number,
                    error=attempt.error,
                )
            else:
                if attempt.status == 200:
                    self._log.info(
                        "notification_sent",
                        idop=delivery.idop,
                        url=url,
                        field=delivery.field,
                        in_query=delivery.in_query,
                        copy=delivery.copy,
                        attempt=attempt_number,
                        status=attempt.status,
                    )
                    return
                # The portal always answers 200: anything else is worth a look in the logs.
                self._log.warning(
                    "notification_rejected",
                    idop=delivery.idop,
                    url=url,
                    attempt=attempt_number,
                    status=attempt.status,
                )
            if attempt_number <= delivery.retries:
                await asyncio.sleep(delivery.retry_delay_seconds)
