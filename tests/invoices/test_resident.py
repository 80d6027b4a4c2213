"""What a resident sees and does through the gateway's calls: «Mes factures», an invoice's page and its
PDF, «Marquer la facture comme réglée», «Contact», and the alert choice."""

from __future__ import annotations

import base64
import re
import uuid
import zlib

from services.invoices.import_format import write_csv
from shared.contracts import envelope_for, events
from tests.invoices.helpers import (
    MANUAL_ROWS,
    activate_account,
    csv_bytes,
    import_file,
    invoice_ids_by_number,
    manual_rows,
    office,
    resident,
    unique_email,
)
from tests.support.service_outbox import publish_through_service_outbox
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually
from tools.demo_data import CENTRAL_REGIE, WATER_REGIE

CLOSED_WATER_REGIE = [CENTRAL_REGIE, WATER_REGIE | {"online_payment_enabled": False}]


async def town_with_marie(
    suite: Suite, **town: object
) -> tuple[TownHandle, str, uuid.UUID, dict[str, uuid.UUID]]:
    handle = await suite.create_town(**town)
    marie = unique_email("marie")
    await import_file(suite, handle, csv_bytes(manual_rows(marie, unique_email("jean"))))
    account = await activate_account(suite, handle, marie)
    return handle, marie, account, await invoice_ids_by_number(suite, handle)


async def download(
    suite: Suite, town: TownHandle, account: uuid.UUID, invoice_id: uuid.UUID
) -> tuple[int, dict[str, str], bytes]:
    async with suite._admin.get(
        suite.url("invoices") + f"/towns/{town.town_id}/accounts/{account}/invoices/{invoice_id}/pdf",
        headers=suite.admin_headers,
    ) as response:
        return response.status, dict(response.headers), await response.read()


def pdf_text(pdf: bytes) -> str:
    """The text drawn on a reportlab page (its content streams are ASCII85 then zlib encoded)."""
    parts = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        packed = re.sub(rb"\s", b"", stream).removesuffix(b"~>")
        parts.append(zlib.decompress(base64.a85decode(packed)).decode("latin-1"))
    return "".join(parts)


# --- «Mes factures» and an invoice's page --------------------------------------------------------------


async def test_paid_invoices_are_flagged_and_their_state_written_in_words(suite: Suite) -> None:
    town, _, account, _ = await town_with_marie(suite)
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    await office(
        suite, town, "POST", "/office/invoices/2016-001-000037/cancel", json={"reason": "Erreur de tarif"}
    )
    _, body = await resident(suite, town.town_id, account, "GET", "/invoices")
    states = {i["number"]: (i["state"], i["state_label"], i["paid"]) for i in body["invoices"]}
    assert states == {
        "2016-001-000096": ("unpaid", "à régler", False),
        "2016-001-000037": ("cancelled", "annulée", False),
        "2015-001-001078": ("unpaid", "à régler", False),
        "2015-001-001205": ("paid_elsewhere", "réglée", True),
    }
    assert body["totals"] == {"count": 4, "unpaid_count": 2, "unpaid_cents": 5700}


async def test_mes_factures_is_paginated_beyond_50_rows_newest_first(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    rows = [
        MANUAL_ROWS[0]
        | {
            "number": f"2026-001-{i:06d}",
            "issued_on": f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}",
            "due_on": "",
            "debtor_emails": marie,
        }
        for i in range(120)
    ]
    await import_file(suite, town, csv_bytes(rows))
    account = await activate_account(suite, town, marie)
    numbers = []
    for page in (1, 2, 3):
        status, body = await resident(suite, town.town_id, account, "GET", f"/invoices?page={page}")
        assert status == 200
        numbers += [i["number"] for i in body["invoices"]]
        assert body["page"]["page_count"] == 3
        assert body["page"]["has_next"] == (page < 3)
    assert len(numbers) == 120
    assert numbers == [f"2026-001-{i:06d}" for i in reversed(range(120))]
    _, body = await resident(suite, town.town_id, account, "GET", "/invoices?page=4")
    assert body["invoices"] == []
    status, _ = await resident(suite, town.town_id, account, "GET", "/invoices?page=0")
    assert status == 422


async def test_invoice_page_gives_each_action_and_why_it_does_not_apply(suite: Suite) -> None:
    town = await suite.create_town(regies=CLOSED_WATER_REGIE)
    marie = unique_email("marie")
    rows = manual_rows(marie, marie)
    rows.append(MANUAL_ROWS[0] | {"number": "2015-001-009999", "amount": "0,50", "debtor_emails": marie})
    rows.append(
        MANUAL_ROWS[0] | {"number": "2015-001-009998", "amount": "100 000,01", "debtor_emails": marie}
    )
    for row in rows:  # one debtor for all
        row |= {"debtor_reference": "D0001", "debtor_name": "DUPONT Marie"}
    await import_file(suite, town, csv_bytes(rows))
    account = await activate_account(suite, town, marie)
    ids = await invoice_ids_by_number(suite, town)
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    await office(suite, town, "POST", "/office/invoices/2016-001-000037/cancel", json={"reason": "Doublon"})
    status, _ = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2015-009-000360']}/declarations",
        json={"method": "cheque", "paid_on": "2015-10-20"},
    )
    assert status == 201

    async def actions(number: str) -> dict[str, tuple[bool, str | None]]:
        status, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{ids[number]}")
        assert status == 200, body
        return {name: (a["allowed"], a["reason"]) for name, a in body["actions"].items()}

    assert await actions("2015-001-001078") == {
        "download": (True, None),
        "pay_online": (True, None),
        "declare": (True, None),
    }
    assert await actions("2015-001-001205") == {
        "download": (True, None),
        "pay_online": (False, "paid"),
        "declare": (False, "paid"),
    }
    assert await actions("2016-001-000037") == {
        "download": (True, None),
        "pay_online": (False, "cancelled"),
        "declare": (False, "cancelled"),
    }
    assert await actions("2015-009-000360") == {
        "download": (True, None),
        "pay_online": (False, "declared"),
        "declare": (False, "declared"),
    }
    assert await actions("2015-RS-00-8001516") == {
        "download": (True, None),
        "pay_online": (False, "regie_closed"),
        "declare": (True, None),
    }
    assert await actions("2015-001-009999") == {
        "download": (True, None),
        "pay_online": (False, "amount_out_of_bounds"),
        "declare": (True, None),
    }
    assert await actions("2015-001-009998") == {
        "download": (True, None),
        "pay_online": (False, "amount_out_of_bounds"),
        "declare": (True, None),
    }

    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{ids['2016-001-000037']}")
    assert (
        body["actions"]["pay_online"]["message"]
        == "Cette facture a été annulée par le service de facturation."
    )
    assert body["invoice"]["cancel_reason"] == "Doublon"
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{ids['2015-009-000360']}")
    assert body["invoice"]["state_label"] == "paiement déclaré"
    assert body["invoice"]["declaration"]["method_label"] == "chèque"
    assert body["invoice"]["declaration"]["state"] == "pending"
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{ids['2015-RS-00-8001516']}")
    invoice = body["invoice"]
    assert (
        invoice["payfip_reference"],
        invoice["payfip_year"],
        invoice["regie"]["payfip_client_number"],
    ) == (
        "2015RS008001516",
        2015,
        "010203",
    )
    assert invoice["pdf"] == {"file_name": "facture-2015-RS-00-8001516.pdf", "source": None}


async def test_pdf_is_drawn_at_first_download_then_kept_with_a_safe_name_and_no_store(suite: Suite) -> None:
    town, _, account, ids = await town_with_marie(suite)
    status, headers, pdf = await download(suite, town, account, ids["2015-001-001078"])
    assert status == 200
    assert headers["Content-Type"] == "application/pdf"
    assert headers["Content-Disposition"] == 'attachment; filename="facture-2015-001-001078.pdf"'
    assert headers["Cache-Control"] == "no-store"
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"/Title (Facture 2015-001-001078)" in pdf
    text = pdf_text(pdf)
    for words in (
        "Facture n\\260 2015-001-001078",
        "DUPONT Marie",
        "25,00 \\200",
        "2015001001078",
        "001964",
        "31/08/2016",
        town.data["name"],
    ):
        assert words in text, words
    _, _, again = await download(suite, town, account, ids["2015-001-001078"])
    assert again == pdf
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{ids['2015-001-001078']}")
    assert body["invoice"]["pdf"]["source"] == "generated"


async def test_reimport_changing_an_invoice_draws_its_pdf_again(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    rows = manual_rows(marie, unique_email("jean"))
    await import_file(suite, town, csv_bytes(rows))
    account = await activate_account(suite, town, marie)
    ids = await invoice_ids_by_number(suite, town)
    _, _, before = await download(suite, town, account, ids["2015-001-001078"])
    rows[0]["amount"] = "27,00"
    await import_file(suite, town, csv_bytes(rows))
    _, _, after = await download(suite, town, account, ids["2015-001-001078"])
    assert "27,00 \\200" in pdf_text(after)
    assert "25,00 \\200" in pdf_text(before)


# --- «Marquer la facture comme réglée» ------------------------------------------------------------------


async def test_declared_payment_waits_for_the_office_which_rejects_or_confirms_it(suite: Suite) -> None:
    town, marie, account, ids = await town_with_marie(suite)
    invoice_id = ids["2015-001-001078"]
    path = f"/invoices/{invoice_id}/declarations"
    status, body = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        path,
        json={"method": "transfer", "paid_on": "2015-09-10", "comment": "Virement du 10"},
    )
    assert status == 201, body
    assert (body["invoice"]["state"], body["invoice"]["state_label"]) == ("declared", "paiement déclaré")
    assert body["actions"]["pay_online"]["reason"] == "declared"

    conn = await suite.db("invoices")
    try:
        declared = await conn.fetchval(
            "SELECT envelope->'payload' FROM outbox WHERE event_type = 'invoices.payment_declared'"
            " AND envelope->'payload'->>'invoice_id' = $1",
            str(invoice_id),
        )
    finally:
        await conn.close()
    assert declared is not None, "the payments service is told the invoice is no longer payable online"

    _, listed = await office(suite, town, "GET", "/office/declarations?state=pending")
    [declaration] = listed["declarations"]
    assert (
        declaration["invoice_number"],
        declaration["account_email"],
        declaration["method"],
        declaration["paid_on"],
    ) == ("2015-001-001078", marie, "transfer", "2015-09-10")
    status, answered = await office(
        suite,
        town,
        "POST",
        f"/office/declarations/{declaration['declaration_id']}/answer",
        json={"accepted": False, "comment": "Virement non reçu"},
    )
    assert (status, answered["state"]) == (200, "rejected")
    [mail] = await suite.wait_for_mail(marie, subject_contains="déclaration de paiement")
    assert "n'a pas pu confirmer" in mail.part("plain")
    assert "Virement non reçu" in mail.part("plain")
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{invoice_id}")
    assert (body["invoice"]["state"], body["actions"]["pay_online"]["allowed"]) == ("unpaid", True)
    assert body["invoice"]["declaration"]["state"] == "rejected"

    status, _ = await resident(
        suite, town.town_id, account, "POST", path, json={"method": "cheque", "paid_on": "2015-09-20"}
    )
    assert status == 201
    _, listed = await office(suite, town, "GET", "/office/declarations?state=pending")
    status, answered = await office(
        suite,
        town,
        "POST",
        f"/office/declarations/{listed['declarations'][0]['declaration_id']}/answer",
        json={"accepted": True},
    )
    assert (status, answered["state"]) == (200, "confirmed")
    mails = await suite.wait_for_mail(marie, subject_contains="déclaration de paiement", count=2)
    assert "a confirmé le règlement de la facture 2015-001-001078" in mails[1].part("plain")
    _, body = await resident(suite, town.town_id, account, "GET", f"/invoices/{invoice_id}")
    assert (body["invoice"]["state"], body["invoice"]["paid"]) == ("paid_elsewhere", True)
    status, again = await office(
        suite,
        town,
        "POST",
        f"/office/declarations/{listed['declarations'][0]['declaration_id']}/answer",
        json={"accepted": False},
    )
    assert (status, again["error"]["code"]) == (409, "declaration_already_answered")


async def test_declaration_is_refused_when_it_does_not_apply_or_its_date_is_wrong(suite: Suite) -> None:
    town, _, account, ids = await town_with_marie(suite)
    await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    status, body = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2015-001-001205']}/declarations",
        json={"method": "cash", "paid_on": "2015-09-10"},
    )
    assert (status, body["error"]["code"], body["error"]["details"]) == (
        409,
        "invoice_action_refused",
        {"reason": "paid"},
    )
    assert body["error"]["message"] == "Cette facture est déjà réglée."
    status, body = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2015-001-001078']}/declarations",
        json={"method": "cash", "paid_on": "2099-01-01"},
    )
    assert (status, body["error"]["message"]) == (422, "La date de paiement ne peut pas être dans le futur.")
    status, body = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        f"/invoices/{ids['2015-001-001078']}/declarations",
        json={"method": "bitcoin", "paid_on": "2015-09-10"},
    )
    assert status == 422
    _, listed = await office(suite, town, "GET", "/office/declarations")
    assert listed["declarations"] == []


# --- «Contact» ------------------------------------------------------------------------------------------


async def test_contact_message_is_kept_emailed_to_the_office_and_acknowledged(suite: Suite) -> None:
    town, marie, account, _ = await town_with_marie(suite)
    status, body = await resident(
        suite,
        town.town_id,
        account,
        "POST",
        "/messages",
        json={"subject": "Facture de septembre", "body": "Bonjour,\nje pense avoir été facturée deux fois."},
    )
    assert status == 201, body
    [to_office] = await suite.wait_for_mail(
        town.data["contact_email"], subject_contains="Facture de septembre"
    )
    assert marie in to_office.subject
    assert to_office.message["Reply-To"] == marie
    assert "je pense avoir été facturée deux fois" in to_office.part("plain")
    [ack] = await suite.wait_for_mail(marie, subject_contains="est bien reçu")
    assert "Facture de septembre" in ack.part("plain")
    _, listed = await office(suite, town, "GET", "/office/messages")
    assert [(m["message_id"], m["resident_email"], m["subject"]) for m in listed["messages"]] == [
        (body["message_id"], marie, "Facture de septembre")
    ]


async def test_contact_messages_are_limited_in_length_and_rate(suite: Suite) -> None:
    town, _, account, _ = await town_with_marie(suite)
    status, body = await resident(
        suite, town.town_id, account, "POST", "/messages", json={"subject": "x" * 151, "body": "x"}
    )
    assert (status, body["error"]["message"]) == (422, "L'objet dépasse 150 caractères.")
    status, body = await resident(
        suite, town.town_id, account, "POST", "/messages", json={"subject": "x", "body": "x" * 5001}
    )
    assert (status, body["error"]["message"]) == (422, "Le message dépasse 5000 caractères.")
    for i in range(5):
        status, _ = await resident(
            suite, town.town_id, account, "POST", "/messages", json={"subject": f"n°{i}", "body": "x"}
        )
        assert status == 201
    async with suite._admin.post(
        suite.url("invoices") + f"/towns/{town.town_id}/accounts/{account}/messages",
        json={"subject": "encore", "body": "x"},
        headers=suite.admin_headers,
    ) as response:
        body = await response.json()
        assert response.status == 429
        assert 3500 < int(response.headers["Retry-After"]) <= 3601
    assert body["error"]["code"] == "too_many_messages"
    assert body["error"]["message"] == "Vous avez déjà envoyé 5 messages dans l'heure : réessayez plus tard."
    _, listed = await office(suite, town, "GET", "/office/messages")
    assert listed["page"]["total_count"] == 5


# --- alerts choice and e-mail changes --------------------------------------------------------------------


async def test_resident_turns_alerts_off_and_on(suite: Suite) -> None:
    town, _, account, _ = await town_with_marie(suite)
    status, body = await resident(suite, town.town_id, account, "GET", "/preferences")
    assert (status, body) == (200, {"alerts_enabled": True, "town_alerts_enabled": True})
    status, body = await resident(
        suite, town.town_id, account, "PUT", "/preferences", json={"alerts_enabled": False}
    )
    assert (status, body) == (200, {"alerts_enabled": False, "town_alerts_enabled": True})
    status, body = await resident(suite, town.town_id, account, "GET", "/preferences")
    assert body["alerts_enabled"] is False
    status, body = await resident(
        suite, town.town_id, uuid.uuid4(), "PUT", "/preferences", json={"alerts_enabled": False}
    )
    assert (status, body["error"]["code"]) == (404, "account_not_found")


async def test_links_stay_when_the_login_email_changes_and_alerts_follow_the_new_address(
    suite: Suite,
) -> None:
    town, marie, account, _ = await town_with_marie(suite)
    new_email = unique_email("marie.new")
    await publish_through_service_outbox(
        suite,
        "auth",
        events.EmailChanged(town_id=town.town_id, account_id=account, old_email=marie, new_email=new_email),
    )
    conn = await suite.db("invoices")
    try:

        async def changed() -> bool:
            email: str = await conn.fetchval("SELECT email FROM accounts WHERE account_id = $1", account)
            return email == new_email

        await eventually(changed, what="the account's e-mail changed")
    finally:
        await conn.close()
    _, body = await resident(suite, town.town_id, account, "GET", "/invoices")
    assert body["totals"]["count"] == 4, "the debtor stays linked although its e-mail is the old one"
    rows = [
        MANUAL_ROWS[0]
        | {"number": "2026-001-000001", "issued_on": "2026-01-05", "due_on": "", "debtor_emails": marie}
    ]
    answer = await import_file(suite, town, write_csv(rows).encode())
    assert answer["alerts"] == 1
    [alert] = await suite.wait_for_mail(new_email, subject_contains="nouvelle facture")
    assert "2026-001-000001" in alert.part("plain")


async def test_an_address_the_office_takes_off_a_debtor_no_longer_shows_its_invoices(suite: Suite) -> None:
    town = await suite.create_town()
    marie, partner, jean = unique_email("marie"), unique_email("partner"), unique_email("jean")
    both = [
        r | {"debtor_emails": f"{marie};{partner}"} if r["debtor_reference"] == "D0001" else r
        for r in manual_rows(marie, jean)
    ]
    await import_file(suite, town, csv_bytes(both))
    marie_account = await activate_account(suite, town, marie)
    partner_account = await activate_account(suite, town, partner)
    invoice = (await invoice_ids_by_number(suite, town))[MANUAL_ROWS[0]["number"]]

    async def visible(account: uuid.UUID) -> tuple[int, int]:
        _, listed = await resident(suite, town.town_id, account, "GET", "/invoices")
        status, _ = await resident(suite, town.town_id, account, "GET", f"/invoices/{invoice}")
        return listed["totals"]["count"], status

    assert await visible(marie_account) == await visible(partner_account) == (4, 200)

    # The office takes the partner's address off the debtor: the partner sees nothing of it any more.
    answer = await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    assert answer["debtors_changed"] == 1, answer
    assert await visible(partner_account) == (0, 404)
    assert await visible(marie_account) == (4, 200)

    # Marie logs in with a new address, which the office then puts on the debtor in place of the old one:
    # her current address keeps the link although the address that made it is gone.
    new_email = unique_email("marie.new")
    await publish_through_service_outbox(
        suite,
        "auth",
        events.EmailChanged(
            town_id=town.town_id, account_id=marie_account, old_email=marie, new_email=new_email
        ),
    )
    conn = await suite.db("invoices")
    try:

        async def changed() -> bool:
            email: str = await conn.fetchval(
                "SELECT email FROM accounts WHERE account_id = $1", marie_account
            )
            return email == new_email

        await eventually(changed, what="the account's e-mail changed")
    finally:
        await conn.close()
    await import_file(suite, town, csv_bytes(manual_rows(new_email, jean)))
    assert await visible(marie_account) == (4, 200)
    # Then the office takes that one off too: nothing links her to the debtor any more.
    await import_file(suite, town, csv_bytes(manual_rows(unique_email("someone.else"), jean)))
    assert await visible(marie_account) == (0, 404)


async def test_an_older_activation_arriving_late_does_not_undo_an_email_change(suite: Suite) -> None:
    town = await suite.create_town()
    account, old, new = uuid.uuid4(), unique_email("old"), unique_email("new")
    activated = events.AccountActivated(town_id=town.town_id, account_id=account, email=old)
    changed = events.EmailChanged(town_id=town.town_id, account_id=account, old_email=old, new_email=new)
    # The activation happened first (its envelope is dated first) but reaches the invoices service last.
    early = envelope_for(activated, producer="auth", correlation_id="x")
    await publish_through_service_outbox(suite, "auth", changed)
    conn = await suite.db("auth")
    try:
        await conn.execute(
            "INSERT INTO outbox (event_id, event_type, routing_key, envelope) VALUES ($1, $2, $3, $4::jsonb)",
            early.event_id,
            early.type,
            early.routing_key,
            early.model_dump_json(),
        )
    finally:
        await conn.close()
    invoices = await suite.db("invoices")
    try:

        async def both_handled() -> bool:
            handled = await invoices.fetchval(
                "SELECT count(*) FROM inbox WHERE event_id = $1", early.event_id
            )
            return bool(handled)

        await eventually(both_handled, what="the late activation was handled")
        assert await invoices.fetchval("SELECT email FROM accounts WHERE account_id = $1", account) == new
    finally:
        await invoices.close()
