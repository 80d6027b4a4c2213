"""notifications: 1 000 PayFiP payments completed with every notification sent twice: the time to settle
them all, the p99 from PayFiP's result to the invoice marked paid, and double settlements (must be 0).

Results are forced on the simulator at a steady pace (an open-loop arrival rate), not all at once: forcing
1 000 results in a second measures how long a self-made backlog takes to drain, not how long one payment
waits. The pace is far above a town's real peak (a few payments a second on the day invoices go out);
the achieved settling rate is reported beside it, so a saturated run shows."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import asyncpg

from bench.report import Result
from tests.invoices.helpers import activate_account, csv_bytes, debtor_rows, import_file
from tests.support.suite import Suite

CONCURRENCY = 16
# Results forced per second: 40 payments a second is a whole town of 1 000 paying within 25 seconds.
RESULTS_PER_SECOND = 40.0


async def run(suite: Suite, count: int = 1000) -> Result:
    town = await suite.create_town()
    email = f"payeur.{uuid.uuid4().hex[:8]}@example.org"
    rows = debtor_rows(email, count, prefix="NOTIF", reference="DBENCH")
    await import_file(suite, town, csv_bytes(rows))
    account = await activate_account(suite, town, email)
    conn = await asyncpg.connect(suite.config.database("invoices"))
    try:
        ids = [
            r["invoice_id"]
            for r in await conn.fetch(
                "SELECT invoice_id FROM invoices WHERE town_id = $1 ORDER BY number", town.town_id
            )
        ]
    finally:
        await conn.close()
    assert len(ids) == count

    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def start(invoice_id: uuid.UUID) -> dict[str, Any]:
        async with semaphore:
            status, body = await suite.call(
                "POST",
                "payments",
                f"/towns/{town.town_id}/accounts/{account}/payments",
                json={"invoice_ids": [str(invoice_id)], "email": email},
            )
            assert status == 201, body
            return {"invoice_id": invoice_id, "idop": body["idop"], "payment_id": body["payment_id"]}

    payments = await asyncio.gather(*(start(i) for i in ids))
    async with aiohttp.ClientSession() as http:
        async with http.post(
            suite.url("payfip") + "/_control/notifications", json={"mode": "duplicate", "copies": 2}
        ) as answer:
            assert answer.status == 200
        result_at: dict[str, float] = {}

        async def pay(payment: dict[str, Any]) -> None:
            result_at[str(payment["invoice_id"])] = time.time()
            async with http.post(
                f"{suite.url('payfip')}/_control/operations/{payment['idop']}/result",
                json={"resultrans": "P", "notify": True},
            ) as answer:
                assert answer.status == 200, await answer.text()

        started = time.perf_counter()
        forcing: list[asyncio.Task[None]] = []
        for n, payment in enumerate(payments):
            # Each result at its own slot in time, whatever the previous ones took.
            await asyncio.sleep(max(0.0, started + n / RESULTS_PER_SECOND - time.perf_counter()))
            forcing.append(asyncio.create_task(pay(payment)))
        await asyncio.gather(*forcing)
        conn = await asyncpg.connect(suite.config.database("invoices"))
        try:
            while True:
                paid = await conn.fetchval(
                    "SELECT count(*) FROM invoices WHERE town_id = $1 AND state = 'paid_online'", town.town_id
                )
                if paid >= count or time.perf_counter() - started > 300:
                    break
                await asyncio.sleep(0.1)
            settle_all = time.perf_counter() - started
            settled = await conn.fetch(
                # settlements.created_at is when the invoices service handled the event (PayFiP's own
                # paid_at has only minutes).
                "SELECT invoice_id, extract(epoch FROM min(created_at)) AS at FROM settlements"
                " WHERE town_id = $1 GROUP BY invoice_id",
                town.town_id,
            )
            double_invoice = await conn.fetchval(
                "SELECT count(*) FROM (SELECT invoice_id FROM settlements s JOIN invoices i USING (invoice_id)"
                " WHERE i.town_id = $1 GROUP BY invoice_id HAVING count(*) > 1) AS twice",
                town.town_id,
            )
        finally:
            await conn.close()
        async with http.post(suite.url("payfip") + "/_control/notifications", json={"mode": "normal"}):
            pass
    pconn = await asyncpg.connect(suite.config.database("payments"))
    try:
        double_events = await pconn.fetchval(
            "SELECT count(*) FROM (SELECT envelope->'payload'->>'payment_id' FROM outbox"
            " WHERE event_type = 'payments.payment_succeeded' AND envelope->>'town_id' = $1"
            " GROUP BY 1 HAVING count(*) > 1) AS twice",
            str(town.town_id),
        )
    finally:
        await pconn.close()
    latencies = sorted(float(r["at"]) - result_at[str(r["invoice_id"])] for r in settled)
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    p50 = latencies[len(latencies) // 2] if latencies else float("nan")
    doubles = int(double_invoice) + int(double_events)
    return Result(
        name="notifications",
        what=f"{count} PayFiP payments completed with duplicated notifications",
        subject={
            "results forced per s": RESULTS_PER_SECOND,
            "settled per s": count / settle_all,
            "seconds to settle all": settle_all,
            "p50 s": p50,
            "p99 s": p99,
            "settled": float(len(settled)),
            "double settlements": float(doubles),
        },
        baseline={},
        ratio=None,
        target="p99 ≤ 2 s, 0 double",
        met=p99 <= 2.0 and doubles == 0 and len(settled) == count,
        notes=[
            f"{count} payments started through the payments service (amounts asked of invoices, SOAP "
            "creerPaiementSecurise to the simulator), then the simulator told to send every notification "
            f"twice and {RESULTS_PER_SECOND:g} results forced per second: notification → gateway → payments → detail "
            "call → payment_succeeded → invoices marks the invoice paid.",
            "Latency: from the moment a result is forced on the simulator to the moment the invoice is recorded paid in the "
            "invoices database (its settlement row). Double settlements: invoices with two settlement rows plus payments with two "
            "payment_succeeded events.",
        ],
    )
