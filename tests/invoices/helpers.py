"""What the invoices tests share: the manual's invoices as an import file, calls as the billing office,
the gateway and the payments service would make them, and residents activated through auth's outbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from services.invoices.import_format import write_csv
from shared.contracts import events
from tests.support.service_outbox import publish_through_service_outbox
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually

# The invoices of the user manual's table («Mes factures»), for one debtor, plus two of another.
MANUAL_ROWS: list[dict[str, str]] = [
    {
        "number": "2015-001-001078",
        "issued_on": "02/09/2015",
        "due_on": "31/08/2016",
        "amount": "25,00",
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor_reference": "D0001",
        "debtor_name": "DUPONT Marie",
    },
    {
        "number": "2016-001-000096",
        "issued_on": "19/10/2015",
        "due_on": "30/10/2015",
        "amount": "32,00",
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor_reference": "D0001",
        "debtor_name": "DUPONT Marie",
    },
    {
        "number": "2016-001-000037",
        "issued_on": "01/10/2015",
        "due_on": "15/10/2015",
        "amount": "10",
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor_reference": "D0001",
        "debtor_name": "DUPONT Marie",
    },
    {
        "number": "2015-001-001205",
        "issued_on": "01/09/2015",
        "due_on": "30/09/2015",
        "amount": "10.00",
        "object": "FACTURATION",
        "regie": "CENTRALE",
        "debtor_reference": "D0001",
        "debtor_name": "DUPONT Marie",
    },
    {
        "number": "2015-009-000360",
        "issued_on": "2015-10-06",
        "due_on": "2015-11-06",
        "amount": "38,40",
        "object": "CANTINE SCOLAIRE",
        "regie": "CENTRALE",
        "debtor_reference": "D0002",
        "debtor_name": "MARTIN Jean",
    },
    {
        "number": "2015-RS-00-8001516",
        "issued_on": "12/10/2015",
        "due_on": "12/11/2015",
        "amount": "37,50",
        "object": "EAU ET ASSAINISSEMENT",
        "regie": "EAU",
        "debtor_reference": "D0002",
        "debtor_name": "MARTIN Jean",
    },
]


def unique_email(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}@example.org"


def manual_rows(marie: str, jean: str) -> list[dict[str, str]]:
    """The manual's rows with e-mails unique to one test (auth and invoices are shared by all tests)."""
    emails = {"D0001": marie, "D0002": jean}
    return [row | {"debtor_emails": emails[row["debtor_reference"]]} for row in MANUAL_ROWS]


def debtor_rows(
    email: str, count: int, *, prefix: str, reference: str, name: str = "PAYEUR Banc"
) -> list[dict[str, str]]:
    """`count` invoices of the central régie for one debtor whose address is `email`, numbered
    `2026-{prefix}-00000`…, dated over the year (so that their order is the page's) and each payable
    online (1 € or more)."""
    return [
        {
            "number": f"2026-{prefix}-{n:05d}",
            "issued_on": f"{1 + n % 28:02d}/{1 + n % 12:02d}/2026",
            "due_on": "31/12/2026",
            "amount": f"{10 + n % 50},{n % 100:02d}",
            "object": "CANTINE SCOLAIRE",
            "regie": "CENTRALE",
            "debtor_reference": reference,
            "debtor_name": name,
            "debtor_emails": email,
        }
        for n in range(count)
    ]


def csv_bytes(rows: Sequence[Mapping[str, str]], *, encoding: str = "utf-8") -> bytes:
    return write_csv(rows).encode(encoding)


async def office(
    suite: Suite,
    town: TownHandle,
    method: str,
    path: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    content_type: str | None = None,
    api_key: str | None = None,
) -> tuple[int, Any]:
    """Call the office API as the town's billing office would (its API key, no internal token)."""
    headers = {"Authorization": f"Bearer {api_key or town.api_key}"}
    if content_type:
        headers["Content-Type"] = content_type
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, suite.url("invoices") + path, json=json, data=data, headers=headers) as response,
    ):
        raw = await response.read()
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, raw


async def import_file(
    suite: Suite, town: TownHandle, body: bytes, *, content_type: str = "text/csv", expect: int | None = 200
) -> Any:
    status, answer = await office(
        suite, town, "POST", "/office/imports", data=body, content_type=content_type
    )
    if expect is not None:
        assert status == expect, (status, answer)
    return answer


async def resident(
    suite: Suite,
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    method: str,
    path: str = "",
    *,
    json: Any = None,
) -> tuple[int, Any]:
    """Call a resident route as the gateway does (internal token, town and account in the path)."""
    return await suite.call(method, "invoices", f"/towns/{town_id}/accounts/{account_id}{path}", json=json)


async def activate_account(suite: Suite, town: TownHandle, email: str) -> uuid.UUID:
    """A resident activates their account: `auth.account_activated` leaves auth's outbox, and the
    invoices service has recorded the account (and linked its debtors) when this returns."""
    account_id = uuid.uuid4()
    await publish_through_service_outbox(
        suite, "auth", events.AccountActivated(town_id=town.town_id, account_id=account_id, email=email)
    )

    async def recorded() -> bool:
        status, _ = await resident(suite, town.town_id, account_id, "GET", "/preferences")
        return status == 200

    await eventually(recorded, what=f"the invoices service recorded the account of {email}")
    return account_id


async def invoice_ids_by_number(suite: Suite, town: TownHandle) -> dict[str, uuid.UUID]:
    status, body = await office(suite, town, "GET", "/office/invoices?per_page=500")
    assert status == 200, body
    return {row["number"]: uuid.UUID(row["invoice_id"]) for row in body["invoices"]}


async def outbox_count(suite: Suite, town: TownHandle, event_type: str | None = None) -> int:
    conn = await suite.db("invoices")
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE envelope->>'town_id' = $1 AND ($2::text IS NULL OR event_type = $2)",
            str(town.town_id),
            event_type,
        )
        return count
    finally:
        await conn.close()
