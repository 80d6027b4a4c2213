"""The chaos suite: a steady flow of work while the broker is killed and restarted, connections are cut,
service processes are killed mid-batch and PostgreSQL becomes unreachable; then a checker counts what was
lost, what happened twice, what is stuck. Expected: zero of each.

The broker is a node of this test's own (its own ports and data directory); PostgreSQL is the machine's,
reached through a TCP proxy that the test cuts, so nothing else running on the machine is disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.chaos.broker import DedicatedRabbitMQ
from tests.chaos.checker import count_events, queues_without_consumers
from tests.support.http import browser_session
from tests.support.infra import Infra
from tests.support.resident import csrf_of
from tests.support.suite import ARTIFACTS, Suite, start_suite, stop_suite
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.chaos

REPORT = ARTIFACTS / "chaos" / "report.json"


@dataclass
class Flow:
    """What the clients asked for and what the portal accepted (an accepted request must take effect)."""

    debtors_accepted: dict[str, str] = field(default_factory=dict)  # reference → e-mail
    debtors_refused: int = 0
    mail_requests_accepted: list[str] = field(default_factory=list)
    mail_requests_refused: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def drive_debtors(suite: Suite, office: dict[str, str], flow: Flow) -> None:
    while not flow.stop.is_set():
        reference = "C" + secrets.token_hex(4)
        email = f"chaos.{reference.lower()}@example.org"
        try:
            status, _ = await asyncio.wait_for(
                suite.call(
                    "PUT",
                    "invoices",
                    f"/office/debtors/{reference}",
                    json={"name": "CHAOS", "emails": [email]},
                    headers=office,
                ),
                10,
            )
        except Exception:
            status = 0
        if status == 200:
            flow.debtors_accepted[reference] = email
        else:
            flow.debtors_refused += 1
        await asyncio.sleep(0.05)


async def drive_mail_requests(base: str, flow: Flow) -> None:
    async with browser_session() as browser:
        while not flow.stop.is_set():
            email = f"chaos.mail.{secrets.token_hex(4)}@example.org"
            try:
                async with asyncio.timeout(10):
                    async with browser.get(base + "/activer") as page:
                        token = csrf_of(await page.text())
                    async with browser.post(
                        base + "/activer", data={"csrf_token": token, "email": email}, allow_redirects=False
                    ) as answer:
                        accepted = answer.status == 303
            except Exception:
                accepted = False
            if accepted:
                flow.mail_requests_accepted.append(email)
            else:
                flow.mail_requests_refused += 1
            await asyncio.sleep(0.1)


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if await check():
                return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise AssertionError(f"not converged after {timeout}s")


async def test_nothing_is_lost_or_applied_twice_through_broker_process_and_database_failures(
    infra: Infra, tmp_path: Path
) -> None:
    broker = DedicatedRabbitMQ(tmp_path / "rabbitmq", node_name=f"chaos{infra.run_id}")
    await broker.start()
    broker_proxy = TcpProxy("127.0.0.1", broker.port)
    await broker_proxy.start()
    database = urlsplit(infra.database_url)
    database_proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
    await database_proxy.start()
    proxied_database = infra.database_url.replace(
        f"{database.hostname}:{database.port or 5432}", f"127.0.0.1:{database_proxy.port}"
    )
    suite = await start_suite(
        infra,
        amqp_url=f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/",
        services_database_url=proxied_database,
        name="chaos",
    )
    recoveries: dict[str, float] = {}
    flow = Flow()
    try:
        town = await suite.create_town()
        drivers = [
            asyncio.create_task(drive_debtors(suite, town.office_headers, flow)),
            asyncio.create_task(drive_mail_requests(town.public_url, flow)),
        ]
        await asyncio.sleep(3)

        async def ready(process: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                await suite.processes[process].wait_ready(timeout=1)
                return True

            return check

        for round_ in range(3):
            broker.kill()
            await broker.wait_dead()
            await asyncio.sleep(2)
            restart = await broker.start()
            recoveries[f"broker restart {round_ + 1} (node start)"] = restart
            await asyncio.sleep(3)

        await broker_proxy.cut()
        await asyncio.sleep(4)
        broker_proxy.restore()
        await asyncio.sleep(3)

        for process in ("notifier", "auth", "invoices"):
            suite.processes[process].kill()
            await suite.processes[process].wait_exit()
            await asyncio.sleep(1)
            await suite.processes[process].start()
            recoveries[f"{process} killed (-9) → ready"] = await until(await ready(process), 60)
            await asyncio.sleep(2)

        await database_proxy.cut()
        await asyncio.sleep(4)
        database_proxy.restore()

        async def invoices_writes_again() -> bool:
            status, _ = await suite.call(
                "PUT",
                "invoices",
                "/office/debtors/PROBE",
                json={"name": "SONDE", "emails": []},
                headers=town.office_headers,
            )
            return status == 200

        recoveries["database cut → invoices writes again"] = await until(invoices_writes_again, 60)
        await asyncio.sleep(3)

        flow.stop.set()
        await asyncio.gather(*drivers)
        stopped = time.monotonic()

        async def converged() -> bool:
            counts = await count_events(suite.config)
            known = await _known_emails(suite, town.town_id)
            mailed = {a for m in suite.mail.messages for a in m.rcpt_to}
            return (
                counts.stuck_outbox_rows == 0
                and counts.lost_events == 0
                and set(flow.debtors_accepted.values()) <= known
                and set(flow.mail_requests_accepted) <= mailed
            )

        with contextlib.suppress(AssertionError):
            await until(converged, 90)
        recoveries["everything delivered after the last fault"] = time.monotonic() - stopped

        counts = await count_events(suite.config)
        known = await _known_emails(suite, town.town_id)
        per_address = Counter(a for m in suite.mail.messages for a in m.rcpt_to)
        message_ids = Counter(m.message_id for m in suite.mail.messages)
        interrupted = await _interrupted_emails(suite)
        report: dict[str, Any] = {
            "flow": {
                "debtor upserts accepted": len(flow.debtors_accepted),
                "debtor upserts refused during faults": flow.debtors_refused,
                "e-mail requests accepted": len(flow.mail_requests_accepted),
                "e-mail requests refused during faults": flow.mail_requests_refused,
                "events published": counts.events_published,
            },
            "counts": {
                "lost events": counts.lost_events,
                "stuck outbox rows": counts.stuck_outbox_rows,
                "accepted debtors unknown to auth": len(set(flow.debtors_accepted.values()) - known),
                "accepted e-mail requests without an e-mail": len(
                    [a for a in flow.mail_requests_accepted if per_address[a] == 0]
                ),
                "e-mails sent twice (same Message-ID)": sum(n - 1 for n in message_ids.values() if n > 1),
                "addresses mailed twice": sum(1 for a in flow.mail_requests_accepted if per_address[a] > 1),
                "e-mails interrupted by a kill (held back, not resent)": interrupted,
                "queues without consumers": await queues_without_consumers(
                    broker.url, suite.config.queue_prefix, ["auth", "notifier"]
                ),
            },
            "recovery seconds": {k: round(v, 2) for k, v in recoveries.items()},
            "e-mail states": await _email_states(suite),
            "lost examples": counts.lost_examples,
        }
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(json.dumps(report, indent=2, ensure_ascii=False))

        assert len(flow.debtors_accepted) > 50, "the flow kept going through the faults"
        zero = {k: v for k, v in report["counts"].items() if "interrupted" not in k}
        assert all(v in (0, []) for v in zero.values()), report
    finally:
        await stop_suite(suite)
        await broker_proxy.stop()
        await database_proxy.stop()
        await broker.stop()


async def _known_emails(suite: Suite, town_id: object) -> set[str]:
    conn = await asyncpg.connect(suite.config.database("auth"))
    try:
        return {
            r["email"] for r in await conn.fetch("SELECT email FROM known_emails WHERE town_id = $1", town_id)
        }
    finally:
        await conn.close()


async def _email_states(suite: Suite) -> dict[str, int]:
    conn = await asyncpg.connect(suite.config.database("notifier"))
    try:
        rows = await conn.fetch("SELECT state, count(*) AS n FROM emails GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
    finally:
        await conn.close()


async def _interrupted_emails(suite: Suite) -> int:
    conn = await asyncpg.connect(suite.config.database("notifier"))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM emails WHERE state IN ('interrupted', 'sending')"
        )
        return count
    finally:
        await conn.close()
