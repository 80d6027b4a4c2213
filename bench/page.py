"""page: the logged-in «Mes factures» page with 20 invoices through the gateway (town from the Host,
session resolved by auth, invoices asked of the invoices service, the page rendered with its security
headers), under wrk with a fixed number of connections and duration, against the bare baseline handler
rendering the same table from the same database."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import uuid

import aiohttp

from bench.report import Result
from bench.rounds import ROUNDS, alternate
from tests.invoices.helpers import csv_bytes, debtor_rows, import_file
from tests.support.resident import Resident, known_debtor, new_email
from tests.support.suite import Suite
from tools.processes import free_port

CONNECTIONS = 32


def _seconds(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


async def wrk(url: str, seconds: float, headers: dict[str, str]) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk (scripts/bench does it)")
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(*args, url, stdout=asyncio.subprocess.PIPE)
    output = (await process.communicate())[0].decode()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _seconds(re.search(r"50%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    p99 = _seconds(re.search(r"99%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return {"req/s": rate, "p50 ms": p50 * 1000, "p99 ms": p99 * 1000, "errors": float(failed)}


async def run(suite: Suite, seconds: float) -> Result:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email("page"))
    rows = debtor_rows(resident.email, 20, prefix="PAGE", reference="DPAGE", name="PAGE Banc")
    await import_file(suite, town, csv_bytes(rows))
    await known_debtor(suite, town, resident.email, reference="DPAGE")
    await resident.activate()
    assert (await resident.log_in()).status == 303
    for _ in range(100):  # the account is linked to its debtor when invoices handles account_activated
        page = await resident.get("/factures")
        if page.text.count("2026-PAGE-") == 20:
            break
        await asyncio.sleep(0.1)
    assert page.text.count("2026-PAGE-") == 20, "the page shows the 20 invoices"
    cookie = f"portail_session={resident.cookie('portail_session')}"
    await resident.close()
    account = await _account_id(suite, town.town_id, resident.email)

    gateway = f"http://127.0.0.1:{suite.config.ports['gateway']}/factures"
    port = free_port()
    baseline_process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.baseline_page",
        "--dsn",
        suite.config.database("invoices"),
        "--port",
        str(port),
        "--town",
        str(town.town_id),
        "--account",
        str(account),
    )
    try:
        url = f"http://127.0.0.1:{port}/factures"
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(url) as answer:
                        body = await answer.text()
                        if answer.status == 200:
                            assert body.count("2026-PAGE-") == 20
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        rounds = await alternate(
            lambda: wrk(gateway, seconds, {"Host": town.host, "Cookie": cookie}),
            lambda: wrk(url, seconds, {}),
            "req/s",
        )
    finally:
        baseline_process.terminate()
        await baseline_process.wait()
    ratio = rounds.ratio
    subject = {
        "req/s": rounds.median("subject", "req/s"),
        "p50 ms": rounds.median("subject", "p50 ms"),
        "p99 ms": rounds.median("subject", "p99 ms"),
        "worst round p99 ms": rounds.worst("subject", "p99 ms"),
        "errors": rounds.total("subject", "errors"),
    }
    baseline = {
        "req/s": rounds.median("baseline", "req/s"),
        "p50 ms": rounds.median("baseline", "p50 ms"),
        "p99 ms": rounds.median("baseline", "p99 ms"),
        "errors": rounds.total("baseline", "errors"),
    }
    return Result(
        name="page",
        what="«Mes factures» (20 invoices, logged in) through the gateway vs a bare handler",
        subject=subject,
        baseline=baseline,
        ratio=ratio,
        target="≥ 40 %, p99 ≤ 100 ms",
        met=ratio >= 0.4 and subject["p99 ms"] <= 100 and subject["errors"] == 0,
        notes=[
            f"wrk, 2 threads, {CONNECTIONS} connections, {ROUNDS} rounds of {int(seconds)} s for each side, "
            "alternating (medians of the rounds), on the same 2-core machine as every "
            "process. Subject: gateway (town cache, security headers, CSRF cookie, session → auth over HTTP, "
            "invoices list → invoices over HTTP, jinja2 page). Baseline: one asyncpg query and one jinja2 "
            "render of the same table in a single aiohttp process, same uvloop.",
            rounds.describe(),
        ],
    )


async def _account_id(suite: Suite, town_id: uuid.UUID, email: str) -> uuid.UUID:
    conn = await suite.db("auth")
    try:
        account: uuid.UUID = await conn.fetchval(
            "SELECT account_id FROM accounts WHERE town_id = $1 AND email = $2", town_id, email
        )
        return account
    finally:
        await conn.close()
