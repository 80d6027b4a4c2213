"""The billing office's actions on invoices (O3) and the description of its API."""

from __future__ import annotations

import json
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


async def payloads(suite: Suite, town: TownHandle, event_type: str) -> list[dict[str, Any]]:
    conn = await suite.db("invoices")
    try:
        rows = await conn.fetch(
            "SELECT envelope->'payload' AS payload FROM outbox WHERE event_type = $1"
            " AND envelope->>'town_id' = $2 ORDER BY id",
            event_type,
            str(town.town_id),
        )
    finally:
        await conn.close()
    return [json.loads(r["payload"]) for r in rows]


async def test_office_cancels_an_invoice_once_with_its_reason_but_never_a_paid_one(suite: Suite) -> None:
    town = await suite.create_town()
    await import_file(suite, town, csv_bytes(manual_rows(unique_email("m"), unique_email("j"))))
    ids = await invoice_ids_by_number(suite, town)
    status, body = await office(
        suite, town, "POST", "/office/invoices/2015-001-001078/cancel", json={"reason": "Émise en double"}
    )
    assert (status, body["state"], body["state_label"], body["cancel_reason"]) == (
        200,
        "cancelled",
        "annulée",
        "Émise en double",
    )
    status, body = await office(
        suite, town, "POST", "/office/invoices/2015-001-001078/cancel", json={"reason": "Encore"}
    )
    assert (status, body["cancel_reason"]) == (200, "Émise en double")
    assert await payloads(suite, town, "invoices.invoice_cancelled") == [
        {
            "town_id": str(town.town_id),
            "invoice_id": str(ids["2015-001-001078"]),
            "number": "2015-001-001078",
            "reason": "Émise en double",
        }
    ]
    status, body = await office(
        suite, town, "POST", "/office/invoices/2015-001-001205/cancel", json={"reason": " "}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_reason")
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    status, body = await office(
        suite, town, "POST", "/office/invoices/2015-001-001205/cancel", json={"reason": "Trop tard"}
    )
    assert (status, body["error"]["code"], body["error"]["details"]) == (
        409,
        "invoice_action_refused",
        {"reason": "paid"},
    )
    assert body["error"]["message"] == "Cette facture est réglée : elle ne peut plus être annulée."


async def test_office_marks_an_invoice_paid_elsewhere_once_and_it_confirms_a_pending_declaration(
    suite: Suite,
) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await import_file(suite, town, csv_bytes(manual_rows(marie, unique_email("j"))))
    account = await activate_account(suite, town, marie)
    ids = await invoice_ids_by_number(suite, town)
    await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2015-001-001078']}/declarations",
        json={"method": "cheque", "paid_on": "2015-09-15"},
    )
    for _ in range(2):
        status, body = await office(
            suite,
            town,
            "POST",
            "/office/invoices/2015-001-001078/paid-elsewhere",
            json={"comment": "Chèque encaissé"},
        )
        assert (status, body["state"], body["state_label"]) == (200, "paid_elsewhere", "réglée")
    assert await payloads(suite, town, "invoices.invoice_settled") == [
        {
            "town_id": str(town.town_id),
            "invoice_id": str(ids["2015-001-001078"]),
            "number": "2015-001-001078",
            "settlement": "paid_elsewhere",
            "payment_id": None,
        }
    ]
    _, declarations = await office(suite, town, "GET", "/office/declarations")
    assert [(d["state"], d["answer_comment"]) for d in declarations["declarations"]] == [
        ("confirmed", "Chèque encaissé")
    ]
    [mail] = await suite.wait_for_mail(marie, subject_contains="déclaration de paiement")
    assert "a confirmé le règlement" in mail.part("plain")
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/cancel", json={"reason": "x"})
    status, body = await office(
        suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={}
    )
    assert (status, body["error"]["details"]) == (409, {"reason": "cancelled"})


async def test_openapi_describes_every_route_with_its_models_and_errors(suite: Suite) -> None:
    town = await suite.create_town()
    _, document = await suite.call("GET", "invoices", "/openapi.json")
    paths = document["paths"]
    expected = {
        ("get", "/towns/{town_id}/accounts/{account_id}/invoices"),
        ("get", "/towns/{town_id}/accounts/{account_id}/invoices/{invoice_id}"),
        ("get", "/towns/{town_id}/accounts/{account_id}/invoices/{invoice_id}/pdf"),
        ("post", "/towns/{town_id}/accounts/{account_id}/invoices/{invoice_id}/declarations"),
        ("post", "/towns/{town_id}/accounts/{account_id}/messages"),
        ("get", "/towns/{town_id}/accounts/{account_id}/preferences"),
        ("put", "/towns/{town_id}/accounts/{account_id}/preferences"),
        ("post", "/towns/{town_id}/accounts/{account_id}/payable"),
        ("post", "/office/imports"),
        ("get", "/office/imports"),
        ("get", "/office/invoices"),
        ("get", "/office/invoices/{number}"),
        ("post", "/office/invoices/{number}/cancel"),
        ("post", "/office/invoices/{number}/paid-elsewhere"),
        ("put", "/office/invoices/{number}/pdf"),
        ("get", "/office/declarations"),
        ("post", "/office/declarations/{declaration_id}/answer"),
        ("get", "/office/messages"),
        ("get", "/office/incidents"),
        ("get", "/office/payments/export"),
    }
    assert expected <= {(m, p) for p, ops in paths.items() for m in ops}
    imports = paths["/office/imports"]["post"]
    assert set(imports["requestBody"]["content"]) == {"text/csv", "application/json", "application/zip"}
    assert {"401", "413", "415", "422"} <= set(imports["responses"])
    assert imports["security"] == [{"officeKey": []}]
    payable = paths["/towns/{town_id}/accounts/{account_id}/payable"]["post"]
    assert payable["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PayableOut"
    }
    assert "PayableInvoice" in document["components"]["schemas"]
    assert "$ref" not in json.dumps(imports["requestBody"]["content"]["application/json"]), (
        "inlined for the raw body"
    )
    # The office reads the same description with its own key.
    async with (
        aiohttp.ClientSession() as http,
        http.get(suite.url("invoices") + "/office/openapi.json", headers=town.office_headers) as response,
    ):
        assert response.status == 200
        assert (await response.json())["paths"].keys() == paths.keys()
