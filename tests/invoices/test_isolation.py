"""A resident never sees, downloads or acts on another resident's or another town's invoice, whatever
id is put in a URL (404, like a missing one); one town's API key never reads or changes another town."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.invoices.helpers import (
    activate_account,
    csv_bytes,
    import_file,
    invoice_ids_by_number,
    manual_rows,
    office,
    resident,
    unique_email,
)
from tests.support.suite import Suite, TownHandle


@dataclass
class Resident:
    town: TownHandle
    account: uuid.UUID
    invoice: uuid.UUID


async def two_towns(suite: Suite) -> tuple[Resident, Resident, Resident]:
    """Marie and Jean in town A, Paul in town B, each with invoices."""
    town_a, town_b = await suite.create_town(), await suite.create_town()
    marie, jean, paul = unique_email("marie"), unique_email("jean"), unique_email("paul")
    await import_file(suite, town_a, csv_bytes(manual_rows(marie, jean)))
    # Town B's numbers differ from A's, so that a 404 for one of A's numbers under B's key is unambiguous.
    rows_b = [row | {"number": "B" + row["number"]} for row in manual_rows(paul, unique_email("x"))]
    await import_file(suite, town_b, csv_bytes(rows_b))
    ids_a, ids_b = await invoice_ids_by_number(suite, town_a), await invoice_ids_by_number(suite, town_b)
    return (
        Resident(town_a, await activate_account(suite, town_a, marie), ids_a["2015-001-001078"]),
        Resident(town_a, await activate_account(suite, town_a, jean), ids_a["2015-009-000360"]),
        Resident(town_b, await activate_account(suite, town_b, paul), ids_b["B2015-001-001078"]),
    )


RESIDENT_INVOICE_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/invoices/{invoice}", None),
    ("GET", "/invoices/{invoice}/pdf", None),
    ("POST", "/invoices/{invoice}/declarations", {"method": "cheque", "paid_on": "2015-10-01"}),
    ("POST", "/payable", {"invoice_ids": ["{invoice}"]}),
]


def _fill(value: Any, invoice: str) -> Any:
    if isinstance(value, str):
        return value.replace("{invoice}", invoice)
    if isinstance(value, list):
        return [_fill(v, invoice) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, invoice) for k, v in value.items()}
    return value


async def test_foreign_invoice_ids_answer_404_on_every_resident_route(suite: Suite) -> None:
    marie, jean, paul = await two_towns(suite)
    cases = [
        ("Jean's invoice, same town", marie.town.town_id, marie.account, str(jean.invoice)),
        ("Paul's invoice, other town", marie.town.town_id, marie.account, str(paul.invoice)),
        ("her own invoice, under the other town", paul.town.town_id, marie.account, str(marie.invoice)),
        ("her own invoice, under Jean's account", marie.town.town_id, jean.account, str(marie.invoice)),
        ("an unknown id", marie.town.town_id, marie.account, str(uuid.uuid4())),
        ("not an id", marie.town.town_id, marie.account, "1%20OR%201=1"),
    ]
    for what, town_id, account, invoice in cases:
        for method, path, body in RESIDENT_INVOICE_ROUTES:
            if path == "/payable" and invoice.startswith("1%20"):
                continue  # a body is parsed, not a URL: a malformed id there is a 422
            status, answer = await resident(
                suite, town_id, account, method, _fill(path, invoice), json=_fill(body, invoice)
            )
            assert status == 404, (what, method, path, status, answer)
    # Nothing was declared on anyone's behalf.
    for someone in (marie, jean, paul):
        _, listed = await office(suite, someone.town, "GET", "/office/declarations")
        assert listed["declarations"] == []


async def test_a_residents_list_never_shows_another_residents_invoices(suite: Suite) -> None:
    marie, jean, paul = await two_towns(suite)
    _, mine = await resident(suite, marie.town.town_id, marie.account, "GET", "/invoices")
    assert {i["invoice_id"] for i in mine["invoices"]} == {str(i) for i in await _ids_of(suite, marie)}
    assert str(jean.invoice) not in {i["invoice_id"] for i in mine["invoices"]}
    status, elsewhere = await resident(suite, paul.town.town_id, marie.account, "GET", "/invoices")
    assert (status, elsewhere["invoices"], elsewhere["totals"]["count"]) == (200, [], 0)


async def _ids_of(suite: Suite, someone: Resident) -> list[uuid.UUID]:
    conn = await suite.db("invoices")
    try:
        rows = await conn.fetch(
            "SELECT i.invoice_id FROM invoices i JOIN account_debtors l USING (debtor_id) WHERE l.account_id = $1",
            someone.account,
        )
    finally:
        await conn.close()
    return [r["invoice_id"] for r in rows]


async def test_messages_and_preferences_under_another_town_answer_404(suite: Suite) -> None:
    marie, _, paul = await two_towns(suite)
    for method, path, body in [
        ("GET", "/preferences", None),
        ("PUT", "/preferences", {"alerts_enabled": False}),
        ("POST", "/messages", {"subject": "x", "body": "y"}),
    ]:
        status, answer = await resident(suite, paul.town.town_id, marie.account, method, path, json=body)
        assert (status, answer["error"]["code"]) == (404, "account_not_found"), (method, path)
    _, listed = await office(suite, paul.town, "GET", "/office/messages")
    assert listed["messages"] == []


async def test_one_towns_key_cannot_read_or_change_another_town(suite: Suite) -> None:
    marie, _, paul = await two_towns(suite)
    town_a, key_b = marie.town, paul.town.api_key
    await resident(
        suite, town_a.town_id, marie.account, "POST", "/messages", json={"subject": "A", "body": "A"}
    )
    await resident(
        suite,
        town_a.town_id,
        marie.account,
        "POST",
        f"/invoices/{marie.invoice}/declarations",
        json={"method": "cash", "paid_on": "2015-10-01"},
    )
    _, declarations = await office(suite, town_a, "GET", "/office/declarations")
    declaration_id = declarations["declarations"][0]["declaration_id"]
    pdf = b"%PDF-1.4\n%%EOF"

    # Town A's invoice numbers and declaration with town B's key: 404, and nothing changes.
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/office/invoices/2015-001-001078", {}),
        ("POST", "/office/invoices/2015-009-000360/cancel", {"json": {"reason": "x"}}),
        ("POST", "/office/invoices/2015-009-000360/paid-elsewhere", {"json": {}}),
        ("PUT", "/office/invoices/2015-009-000360/pdf", {"data": pdf, "content_type": "application/pdf"}),
        ("POST", f"/office/declarations/{declaration_id}/answer", {"json": {"accepted": True}}),
    ]
    for method, path, kwargs in attempts:
        status, answer = await office(suite, town_a, method, path, api_key=key_b, **kwargs)
        assert status == 404, (method, path, status, answer)
    _, a_invoices = await office(suite, town_a, "GET", "/office/invoices?per_page=500")
    assert {i["state"] for i in a_invoices["invoices"]} == {"unpaid", "declared"}
    assert {i["pdf_source"] for i in a_invoices["invoices"]} == {None}

    # Lists with town B's key show only town B's.
    for path, key in [
        ("/office/invoices", "invoices"),
        ("/office/declarations", "declarations"),
        ("/office/messages", "messages"),
        ("/office/incidents", "incidents"),
        ("/office/imports", "imports"),
    ]:
        status, answer = await office(suite, town_a, "GET", path, api_key=key_b)
        assert status == 200
        listed = str(answer[key])
        assert not any(str(i) in listed for i in [*await _ids_of(suite, marie), declaration_id]), path
        assert "'2015-001-001078'" not in listed, path
    _, b_invoices = await office(suite, town_a, "GET", "/office/invoices", api_key=key_b)
    assert {i["number"][0] for i in b_invoices["invoices"]} == {"B"}
    _, export = await office(suite, town_a, "GET", "/office/payments/export", api_key=key_b)
    assert export.decode("utf-8-sig").count("\r\n") == 1


async def test_office_routes_need_a_valid_key(suite: Suite) -> None:
    town = await suite.create_town()
    routes = [
        ("GET", "/office/invoices"),
        ("GET", "/office/invoices/2015-001-001078"),
        ("POST", "/office/invoices/2015-001-001078/cancel"),
        ("POST", "/office/invoices/2015-001-001078/paid-elsewhere"),
        ("PUT", "/office/invoices/2015-001-001078/pdf"),
        ("POST", "/office/imports"),
        ("GET", "/office/imports"),
        ("GET", "/office/declarations"),
        ("POST", f"/office/declarations/{uuid.uuid4()}/answer"),
        ("GET", "/office/messages"),
        ("GET", "/office/incidents"),
        ("GET", "/office/payments/export"),
        ("GET", "/office/openapi.json"),
    ]
    async with aiohttp.ClientSession() as http:
        for method, path in routes:
            for headers in (
                {},
                {"Authorization": "Bearer pf_unknown"},
                {"Authorization": f"Basic {town.api_key}"},
            ):
                async with http.request(method, suite.url("invoices") + path, headers=headers) as response:
                    body = await response.json()
                    assert (response.status, body["error"]["code"]) == (401, "unauthorized"), (
                        method,
                        path,
                        headers,
                    )
