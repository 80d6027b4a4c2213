"""The payments service's side: what is payable (the HTTP contract it codes against), and
`payments.payment_succeeded` marking invoices paid exactly once, sent through the payments outbox."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.contracts import events
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
from tests.support.service_outbox import publish_again_through_service_outbox, publish_through_service_outbox
from tests.support.suite import Suite, TownHandle, log_of
from tests.support.waiting import eventually
from tools.demo_data import CENTRAL_REGIE

# --- POST /towns/{town_id}/accounts/{account_id}/payable --------------------------------------------------


async def marie_with_invoices(
    suite: Suite, **town: Any
) -> tuple[TownHandle, uuid.UUID, dict[str, uuid.UUID], list[dict[str, str]]]:
    handle = await suite.create_town(**town)
    marie = unique_email("marie")
    rows = manual_rows(marie, marie)
    for row in rows:
        row |= {"debtor_reference": "D0001", "debtor_name": "DUPONT Marie"}
    rows.append(rows[0] | {"number": "2015-001-009999", "amount": "0,99"})
    await import_file(suite, handle, csv_bytes(rows))
    account = await activate_account(suite, handle, marie)
    return handle, account, await invoice_ids_by_number(suite, handle), rows


async def payable(
    suite: Suite, town: TownHandle, account: uuid.UUID, ids: list[uuid.UUID]
) -> tuple[int, Any]:
    return await resident(
        suite, town.town_id, account, "POST", "/payable", json={"invoice_ids": [str(i) for i in ids]}
    )


async def test_payable_answers_the_contract_the_payments_service_codes_against(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    await office(suite, town, "POST", "/office/invoices/2016-001-000037/cancel", json={"reason": "Doublon"})
    await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2016-001-000096']}/declarations",
        json={"method": "cash", "paid_on": "2015-10-20"},
    )
    wanted = [
        "2015-001-001078",
        "2015-RS-00-8001516",
        "2015-001-001205",
        "2016-001-000037",
        "2016-001-000096",
        "2015-001-009999",
    ]
    status, body = await payable(suite, town, account, [ids[n] for n in wanted])
    assert status == 200, body
    assert body["town"] == {
        "town_id": str(town.town_id),
        "name": town.data["name"],
        "public_url": town.public_url,
    }
    first = body["invoices"][0]
    regie = next(r for r in town.data["regies"] if r["code"] == "CENTRALE")
    assert first == {
        "invoice_id": str(ids["2015-001-001078"]),
        "number": "2015-001-001078",
        "amount_cents": 2500,
        "state": "unpaid",
        "payfip_reference": "2015001001078",
        "payfip_year": 2015,
        "object": "FACTURATION",
        "regie": {"regie_id": regie["regie_id"], **CENTRAL_REGIE},
        "payable": True,
        "reason": None,
    }
    assert [(i["number"], i["state"], i["payable"], i["reason"]) for i in body["invoices"]] == [
        ("2015-001-001078", "unpaid", True, None),
        ("2015-RS-00-8001516", "unpaid", True, None),
        ("2015-001-001205", "paid_elsewhere", False, "paid"),
        ("2016-001-000037", "cancelled", False, "cancelled"),
        ("2016-001-000096", "declared", False, "declared"),
        ("2015-001-009999", "unpaid", False, "amount_out_of_bounds"),
    ]
    assert body["invoices"][1]["regie"]["grouped_payment_allowed"] is False


async def test_payable_says_regie_closed_and_gives_the_amount_of_the_moment(suite: Suite) -> None:
    regies = [
        {k: v for k, v in r.items() if k != "regie_id"} | {"online_payment_enabled": r["code"] != "EAU"}
        for r in (await suite.create_town()).data["regies"]
    ]
    town, account, ids, rows = await marie_with_invoices(suite, regies=regies)
    _, body = await payable(suite, town, account, [ids["2015-RS-00-8001516"]])
    assert (body["invoices"][0]["payable"], body["invoices"][0]["reason"]) == (False, "regie_closed")
    _, before = await payable(suite, town, account, [ids["2015-001-001078"]])
    rows[0]["amount"] = "26,50"
    await import_file(suite, town, csv_bytes(rows))
    _, after = await payable(suite, town, account, [ids["2015-001-001078"]])
    assert (before["invoices"][0]["amount_cents"], after["invoices"][0]["amount_cents"]) == (2500, 2650)


async def test_payable_answers_404_when_any_invoice_is_not_the_accounts(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    other_town, other_account, other_ids, _ = await marie_with_invoices(suite)
    mine = ids["2015-001-001078"]
    for foreign in (other_ids["2015-001-001078"], uuid.uuid4()):
        status, body = await payable(suite, town, account, [mine, foreign])
        assert (status, body["error"]["code"]) == (404, "invoice_not_found")
    status, body = await payable(suite, other_town, account, [mine])
    assert (status, body["error"]["code"]) == (404, "invoice_not_found")
    status, body = await payable(suite, town, other_account, [mine])
    assert (status, body["error"]["code"]) == (404, "invoice_not_found")
    status, _ = await payable(suite, town, account, [])
    assert status == 422
    status, _ = await payable(suite, town, account, [uuid.uuid4() for _ in range(51)])
    assert status == 422
    status, body = await payable(suite, town, account, [mine, mine])
    assert (status, len(body["invoices"])) == (200, 1)


# --- payments.payment_succeeded -----------------------------------------------------------------------------


def payment_event(
    town: TownHandle, account: uuid.UUID, items: list[tuple[uuid.UUID, str, int]], **extra: Any
) -> events.PaymentSucceeded:
    regie = next(r for r in town.data["regies"] if r["code"] == "CENTRALE")
    return events.PaymentSucceeded(
        town_id=town.town_id,
        payment_id=extra.pop("payment_id", uuid.uuid4()),
        account_id=account,
        email="marie@example.org",
        regie_id=uuid.UUID(regie["regie_id"]),
        reference=items[0][1].replace("-", ""),
        amount_cents=sum(i[2] for i in items),
        items=[events.PaidItem(invoice_id=i, number=n, amount_cents=a) for i, n, a in items],
        authorisation_number="112233445566-tip",
        result_code="P",
        paid_at=datetime(2026, 11, 23, 10, 15, tzinfo=UTC),
    )


async def invoice_state(suite: Suite, town: TownHandle, number: str) -> str:
    _, body = await office(suite, town, "GET", f"/office/invoices/{number}")
    return str(body["state"])


async def settled_events(suite: Suite, invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    conn = await suite.db("invoices")
    try:
        rows = await conn.fetch(
            "SELECT envelope->'payload' AS payload FROM outbox WHERE event_type = 'invoices.invoice_settled'"
            " AND envelope->'payload'->>'invoice_id' = $1",
            str(invoice_id),
        )
    finally:
        await conn.close()
    return [json.loads(r["payload"]) for r in rows]


async def test_redelivered_payment_event_marks_invoice_paid_once(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    invoice_id = ids["2015-001-001078"]
    event = payment_event(
        town,
        account,
        [(invoice_id, "2015-001-001078", 2500), (ids["2015-001-001205"], "2015-001-001205", 1000)],
    )
    sent = await publish_through_service_outbox(suite, "payments", event)

    async def paid() -> bool:
        return await invoice_state(suite, town, "2015-001-001078") == "paid_online"

    await eventually(paid, what="the invoice is paid online")
    assert await invoice_state(suite, town, "2015-001-001205") == "paid_online"

    await publish_again_through_service_outbox(suite, "payments", sent.event_id)

    async def duplicate_seen() -> bool:
        return any(
            str(sent.event_id) in line and '"outcome": "duplicate"' in line
            for line in log_of(suite, "invoices").read_text().splitlines()
        )

    await eventually(duplicate_seen, what="the invoices service received the same event again")
    assert await settled_events(suite, invoice_id) == [
        {
            "town_id": str(town.town_id),
            "invoice_id": str(invoice_id),
            "number": "2015-001-001078",
            "settlement": "paid_online",
            "payment_id": str(event.payment_id),
        }
    ]
    conn = await suite.db("invoices")
    try:
        assert (
            await conn.fetchval("SELECT count(*) FROM settlements WHERE payment_id = $1", event.payment_id)
            == 2
        )
    finally:
        await conn.close()
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{invoice_id}")
    assert (
        body["invoice"]["state_label"],
        body["invoice"]["paid"],
        body["actions"]["pay_online"]["reason"],
    ) == (
        "réglée en ligne",
        True,
        "paid",
    )


async def test_the_same_payment_under_a_new_event_id_is_not_applied_twice(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    invoice_id = ids["2015-001-001078"]
    payment_id = uuid.uuid4()
    sent = [
        await publish_through_service_outbox(
            suite,
            "payments",
            payment_event(town, account, [(invoice_id, "2015-001-001078", 2500)], payment_id=payment_id),
        )
        for _ in range(2)
    ]

    async def both_handled() -> bool:
        log = log_of(suite, "invoices").read_text()
        return all(f'"event_id": "{e.event_id}"' in log and "event_consumed" in log for e in sent) and all(
            any(str(e.event_id) in line and '"outcome": "handled"' in line for line in log.splitlines())
            for e in sent
        )

    await eventually(both_handled, what="both events handled, each for the first time")
    assert len(await settled_events(suite, invoice_id)) == 1
    conn = await suite.db("invoices")
    try:
        assert await conn.fetchval("SELECT count(*) FROM settlements WHERE payment_id = $1", payment_id) == 1
    finally:
        await conn.close()
    _, incidents = await office(suite, town, "GET", "/office/incidents")
    assert incidents["incidents"] == []


async def test_payment_of_a_cancelled_invoice_is_an_incident_not_an_overwrite(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    await office(suite, town, "POST", "/office/invoices/2015-001-001078/cancel", json={"reason": "Doublon"})
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    event = payment_event(
        town,
        account,
        [
            (ids["2015-001-001078"], "2015-001-001078", 2500),
            (ids["2015-001-001205"], "2015-001-001205", 1000),
        ],
    )
    await publish_through_service_outbox(suite, "payments", event)

    async def two_incidents() -> bool:
        _, body = await office(suite, town, "GET", "/office/incidents")
        return len(body["incidents"]) == 2

    await eventually(two_incidents, what="the office sees two incidents")
    _, body = await office(suite, town, "GET", "/office/incidents")
    by_number = {i["invoice_number"]: i for i in body["incidents"]}
    assert by_number["2015-001-001078"]["kind"] == "paid_online_after_cancellation"
    assert by_number["2015-001-001078"]["message"].startswith(
        "Paiement en ligne reçu pour une facture annulée"
    )
    assert by_number["2015-001-001078"]["payment_id"] == str(event.payment_id)
    assert by_number["2015-001-001205"]["kind"] == "paid_online_after_paid_elsewhere"
    assert await invoice_state(suite, town, "2015-001-001078") == "cancelled"
    assert await invoice_state(suite, town, "2015-001-001205") == "paid_elsewhere"
    assert await settled_events(suite, ids["2015-001-001078"]) == []
    # The money is real: the reconciliation export lists it.
    _, export = await office(suite, town, "GET", "/office/payments/export")
    assert export.count(b"112233445566-tip") == 2


async def test_payments_export_is_a_spreadsheet_ready_csv(suite: Suite) -> None:
    town, account, ids, _ = await marie_with_invoices(suite)
    # A debtor name written through the debtor API could start like a formula: the export defuses it.
    await office(suite, town, "PUT", "/office/debtors/D0001", json={"name": "=DUPONT Marie", "emails": []})
    event = payment_event(town, account, [(ids["2015-RS-00-8001516"], "2015-RS-00-8001516", 3750)])
    await publish_through_service_outbox(suite, "payments", event)

    async def paid() -> bool:
        return await invoice_state(suite, town, "2015-RS-00-8001516") == "paid_online"

    await eventually(paid, what="the invoice is paid online")
    async with suite._admin.get(
        suite.url("invoices") + "/office/payments/export?from=2026-11-01&to=2026-11-30",
        headers=town.office_headers,
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        assert response.headers["Content-Disposition"].startswith(
            f'attachment; filename="paiements-{town.slug}-'
        )
        raw = await response.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["date_paiement", "heure_paiement", "numero_facture", "montant"]
    assert rows[1][:9] == [
        "23/11/2026",
        "11:15",
        "2015-RS-00-8001516",
        "37,50",
        "112233445566-tip",
        "2015RS008001516",
        "2015",
        "EAU",
        "010203",
    ]
    assert rows[1][10] == "'=DUPONT Marie"
    assert rows[1][11:13] == ["carte bancaire", "paid_online"]
    assert b"\r\n" in raw
    _, empty = await office(suite, town, "GET", "/office/payments/export?from=2026-12-01")
    assert empty.decode("utf-8-sig").count("\r\n") == 1, "the header alone"
