"""The sending side: workers that take queued e-mails one at a time and hand them to SMTP.

Woken by NOTIFY when e-mails are queued and by a periodic sweep (retries that came due, missed
notifications). Each worker owns one SMTP connection. Several replicas can run: a claim is an
`UPDATE … FOR UPDATE SKIP LOCKED` that commits before the SMTP conversation starts.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
from prometheus_client import Counter

from services.notifier.domain import retry_delay_seconds
from services.notifier.mailer import PermanentFailure, SmtpMailer, TemporaryFailure
from services.notifier.repository import DeliveryLedger
from services.notifier.settings import Settings
from shared.plumbing.db import listen_forever
from shared.plumbing.logging import get_logger, log_context
from shared.plumbing.metrics import Metrics

log = get_logger(__name__)


class EmailSender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, metrics: Metrics) -> None:
        self._ledger = DeliveryLedger(pool)
        self._settings = settings
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._helpers: list[asyncio.Task[None]] = []
        self._outcomes = Counter(
            "portail_emails", "E-mails handed to SMTP, by outcome", ["outcome"], registry=metrics.registry
        )

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(n), name=f"email-sender-{n}")
            for n in range(self._settings.senders)
        ]
        self._helpers = [
            asyncio.create_task(
                listen_forever(self._settings.database_url, "emails", self._wake.set), name="email-listener"
            ),
            asyncio.create_task(self._watch_interrupted(), name="email-interrupted"),
        ]

    async def stop_taking(self) -> None:
        """Take no new e-mail; those queued stay queued for another replica or the next start."""
        self._stopping.set()
        self._wake.set()

    async def stop(self, timeout: float) -> None:
        """Let each worker finish the e-mail in hand (so none is left "sending"), then stop."""
        await self.stop_taking()
        _done, pending = await asyncio.wait(self._tasks, timeout=timeout)
        for task in [*pending, *self._helpers]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._helpers, return_exceptions=True)

    async def _worker(self, number: int) -> None:
        mailer = SmtpMailer(self._settings)
        try:
            while not self._stopping.is_set():
                try:
                    sent_one = await self.send_next(mailer)
                except Exception as error:
                    # A worker must outlive any failure (database cut, broken connection…): it is the only
                    # one sending its share of the e-mails.
                    log.warning("email_worker_failed", worker=number, error=repr(error))
                    await asyncio.sleep(1.0)
                    continue
                if sent_one:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.sweep_seconds)
        finally:
            await mailer.close()

    async def send_next(self, mailer: SmtpMailer) -> bool:
        """Send one due e-mail if there is one; True if one was taken."""
        row = await self._ledger.claim_next()
        if row is None:
            return False
        email_id = row["email_id"]
        with log_context(email_id=str(email_id), event_id=str(row["event_id"]), purpose=row["purpose"]):
            if row["message"] is None:
                await self._ledger.mark_failed(email_id, "no composed message (queued before migration 0002)")
                return True
            try:
                await mailer.send(self._settings.from_address, row["to_address"], bytes(row["message"]))
            except TemporaryFailure as error:
                if row["attempts"] >= self._settings.max_attempts:
                    await self._ledger.mark_failed(
                        email_id, f"gave up after {row['attempts']} attempts: {error}"
                    )
                    log.error("email_failed", reason=str(error), attempts=row["attempts"])
                    self._outcomes.labels(outcome="failed").inc()
                else:
                    delay = retry_delay_seconds(
                        row["attempts"],
                        base=self._settings.retry_base_seconds,
                        ceiling=self._settings.retry_max_seconds,
                    )
                    await self._ledger.mark_retry(email_id, str(error), delay)
                    log.warning(
                        "email_retry_scheduled", reason=str(error), attempts=row["attempts"], delay=delay
                    )
                    self._outcomes.labels(outcome="retried").inc()
                return True
            except PermanentFailure as error:
                await self._ledger.mark_failed(email_id, str(error))
                log.error("email_failed", reason=str(error), attempts=row["attempts"])
                self._outcomes.labels(outcome="failed").inc()
                return True
            await self._ledger.mark_sent(email_id)
            log.info("email_sent")
            self._outcomes.labels(outcome="sent").inc()
            return True

    async def _watch_interrupted(self) -> None:
        while True:
            await asyncio.sleep(max(self._settings.interrupted_after_seconds / 4, 1.0))
            try:
                count = await self._ledger.mark_interrupted(self._settings.interrupted_after_seconds)
            except Exception as error:
                log.warning("email_watch_failed", error=repr(error))
                continue
            if count:
                log.error("emails_interrupted", count=count)
