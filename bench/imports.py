"""import: 100 000 invoices through the office's import path (HTTP, CSV parsing and checks, COPY into a
staging table, one upsert, debtors, events) against a raw COPY of the same rows into the same table."""

from __future__ import annotations

import time
import uuid
from datetime import date

import asyncpg

from bench.report import Result
from tests.invoices.helpers import import_file
from tests.invoices.test_import_scale import DEBTORS, ROWS, large_file
from tests.support.suite import Suite


async def _raw_copy(suite: Suite, rows: int) -> float:
    """The same rows, already typed, COPYed straight into `invoices` for a town of their own."""
    town = await suite.create_town()
    conn = await asyncpg.connect(suite.config.database("invoices"))
    try:
        regies = {
            r["code"]: r["regie_id"]
            for r in await conn.fetch("SELECT code, regie_id FROM regies WHERE town_id = $1", town.town_id)
        }
        debtors = [uuid.uuid4() for _ in range(DEBTORS)]
        await conn.copy_records_to_table(
            "debtors",
            records=[(d, town.town_id, f"D{n:05d}", f"DEBITEUR {n:05d}") for n, d in enumerate(debtors)],
            columns=["debtor_id", "town_id", "reference", "name"],
        )
        records = [
            (
                uuid.uuid4(),
                town.town_id,
                f"2026-{i // 1000:03d}-{i:06d}",
                debtors[i % DEBTORS],
                regies["CENTRALE" if i % 3 else "EAU"],
                date(2026, 1 + i % 12, 1 + i % 28),
                None,
                (10 + i % 90) * 100 + i % 100,
                f"CANTINE SCOLAIRE {i % 12 + 1:02d}/2026",
                f"2026{i // 1000:03d}{i:06d}",
                2026,
            )
            for i in range(rows)
        ]
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "invoices",
            records=records,
            columns=[
                "invoice_id",
                "town_id",
                "number",
                "debtor_id",
                "regie_id",
                "issued_on",
                "due_on",
                "amount_cents",
                "object",
                "payfip_reference",
                "payfip_year",
            ],
        )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def run(suite: Suite, rows: int = ROWS) -> Result:
    town = await suite.create_town()
    body = large_file()
    started = time.perf_counter()
    answer = await import_file(suite, town, body)
    elapsed = time.perf_counter() - started
    assert answer["created"] == rows, answer
    copy_elapsed = await _raw_copy(suite, rows)
    ratio = copy_elapsed / elapsed
    return Result(
        name="import",
        what=f"{rows} invoices through POST /office/imports vs a raw COPY of the same rows",
        subject={"rows/s": rows / elapsed, "seconds": elapsed, "MiB": len(body) / 1024**2},
        baseline={"rows/s": rows / copy_elapsed, "seconds": copy_elapsed},
        ratio=ratio,
        target="≥ 30 %",
        met=ratio >= 0.3,
        notes=[
            f"A {len(body) / 1024**2:.1f} MiB CSV ({rows} rows, {DEBTORS} debtors with e-mails) posted by the "
            "office to the invoices service: decoding, every row checked, COPY into a staging table, one "
            "upsert of debtors and invoices, their events written to the outbox, in one transaction.",
            "Baseline: the same rows, already typed in Python, COPYed into `invoices` by asyncpg (no checks, "
            "no debtors upsert, no events).",
        ],
    )
