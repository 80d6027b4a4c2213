"""100 000 invoices in one file go through, set-based; the speed is printed, never asserted."""

from __future__ import annotations

import time

from services.invoices.import_format import COLUMNS
from tests.invoices.helpers import import_file, outbox_count
from tests.support.suite import Suite

ROWS = 100_000
DEBTORS = 2_000  # 50 invoices each: a town's year of monthly canteen, day-care and water bills


def large_file() -> bytes:
    lines = [";".join(COLUMNS)]
    for i in range(ROWS):
        debtor = i % DEBTORS
        lines.append(
            f"2026-{i // 1000:03d}-{i:06d};{1 + i % 28:02d}/{1 + i % 12:02d}/2026;;{10 + i % 90},{i % 100:02d};"
            f"CANTINE SCOLAIRE {i % 12 + 1:02d}/2026;{'CENTRALE' if i % 3 else 'EAU'};D{debtor:05d};"
            f"DEBITEUR {debtor:05d};d{debtor:05d}@example.org;;"
        )
    return ("\r\n".join(lines) + "\r\n").encode()


async def test_hundred_thousand_invoices_import_in_one_file_and_reimport_unchanged(suite: Suite) -> None:
    town = await suite.create_town()
    body = large_file()

    started = time.perf_counter()
    answer = await import_file(suite, town, body)
    first = time.perf_counter() - started
    assert (answer["rows"], answer["created"], answer["debtors_changed"]) == (ROWS, ROWS, DEBTORS)
    assert await outbox_count(suite, town, "invoices.debtor_upserted") == DEBTORS

    started = time.perf_counter()
    again = await import_file(suite, town, body)
    second = time.perf_counter() - started
    assert (again["unchanged"], again["created"], again["updated"], again["debtors_changed"]) == (
        ROWS,
        0,
        0,
        0,
    )
    assert await outbox_count(suite, town, "invoices.debtor_upserted") == DEBTORS

    conn = await suite.db("invoices")
    try:
        stored = await conn.fetchval("SELECT count(*) FROM invoices WHERE town_id = $1", town.town_id)
    finally:
        await conn.close()
    assert stored == ROWS
    print(
        f"\n{ROWS} invoices ({len(body) / 1024**2:.1f} MiB CSV): first import {first:.1f} s"
        f" ({ROWS / first:,.0f} rows/s), same file again {second:.1f} s ({ROWS / second:,.0f} rows/s)"
    )
