"""Starting a payment through the real payments processes: amounts from the invoices service, the lock,
grouped payments, refusals, and PayFiP faults that lose nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import pytest

from shared.contracts import events
from tests.payments.conftest import LOCK, PaymentsWorld
from tests.support.waiting import eventually


async def test_a_started_payment_is_stored_locked_and_sent_to_payfip_with_the_amount_due_now(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account, amount_cents=4250)

    payment = await world.started(town, account, [invoice])

    assert payment["state"] == "pending"
    assert payment["state_label"] == "en cours de vérification"
    assert payment["numcli"] == "001964"
    assert payment["amount_cents"] == 4250
    assert payment["reference"] == invoice["payfip_reference"]
    assert not payment["grouped"]
    assert payment["items"] == [
        {"invoice_id": invoice["invoice_id"], "number": invoice["number"], "amount_cents": 4250}
    ]
    assert payment["redirect_url"] == f"{world.proxy.url}/tpa/paiementws.web?idop={payment['idop']}"
    assert payment["lock_active"]
    created = datetime.fromisoformat(payment["created_at"])
    assert abs((datetime.fromisoformat(payment["locked_until"]) - created).total_seconds() - LOCK) < 1

    operation = await world.sim("GET", f"/operations/{payment['idop']}")
    assert operation["fields"] == {
        "exer": "2026",
        "mel": "marie.dupont@example.org",
        "montant": "4250",
        "numcli": "001964",
        "objet": f"Facture {invoice['number'].replace('-', ' ')} Cantine de l ecole mars",
        "refdet": invoice["payfip_reference"],
        "saisie": "T",
        "urlnotif": world.suite.url("gateway") + "/payfip/notification",
        "urlredirect": town.public_url + "/reglement/retour",
    }
    locks = await world.locks(town, account, [invoice])
    assert locks == [
        {
            "invoice_id": invoice["invoice_id"],
            "payment_id": payment["payment_id"],
            "own": True,
            "locked_until": locks[0]["locked_until"],
        }
    ]


async def test_the_browser_cannot_send_an_amount(world: PaymentsWorld) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)
    status, body = await world.payments(
        "POST",
        f"/towns/{town.town_id}/accounts/{account}/payments",
        {"invoice_ids": [invoice["invoice_id"]], "email": "a.b@example.org", "amount_cents": 100},
    )
    assert status == 422, body


async def test_a_grouped_payment_is_one_operation_with_a_grouping_reference_and_a_record_of_its_invoices(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    invoices = [world.invoices.add_invoice(town, account, amount_cents=a) for a in (1000, 2550, 310)]

    payment = await world.started(town, account, invoices)

    assert payment["grouped"]
    assert payment["amount_cents"] == 3860
    assert payment["reference"].startswith("G")
    assert 6 <= len(payment["reference"]) <= 30
    assert [i["amount_cents"] for i in payment["items"]] == [1000, 2550, 310]
    operation = await world.sim("GET", f"/operations/{payment['idop']}")
    assert operation["fields"]["montant"] == "3860"
    assert operation["fields"]["refdet"] == payment["reference"]
    items = await world.rows(
        "SELECT invoice_id::text, number, amount_cents FROM payment_items WHERE payment_id = $1 ORDER BY position",
        uuid.UUID(payment["payment_id"]),
    )
    assert [tuple(row) for row in items] == [
        (i["invoice_id"], i["number"], i["amount_cents"]) for i in invoices
    ]
    assert len(await world.locks(town, account, invoices)) == 3


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("two_regies", "several_regies"),
        ("grouping_not_allowed", "grouped_payment_not_allowed"),
        ("already_paid", "invoice_not_payable"),
        ("too_small", "amount_out_of_bounds"),
    ],
)
async def test_payments_that_cannot_start_are_refused_with_a_stable_code_and_a_french_message(
    world: PaymentsWorld, setup: str, code: str
) -> None:
    town = await world.town()
    account = world.account()
    add = world.invoices.add_invoice
    chosen = {
        "two_regies": lambda: [add(town, account), add(town, account, regie="EAU")],
        "grouping_not_allowed": lambda: [add(town, account, regie="EAU"), add(town, account, regie="EAU")],
        "already_paid": lambda: [add(town, account, payable=False, reason="paid")],
        "too_small": lambda: [add(town, account, amount_cents=99)],
    }[setup]()
    status, body = await world.start(town, account, chosen)
    assert status == 409, body
    assert body["error"]["code"] == code
    assert body["error"]["message"].endswith(".")
    assert await world.rows("SELECT 1 FROM payment_attempts WHERE town_id = $1", town.town_id) == []


async def test_another_accounts_invoice_is_not_found(world: PaymentsWorld) -> None:
    town = await world.town()
    owner, stranger = world.account(), world.account()
    invoice = world.invoices.add_invoice(town, owner)
    status, body = await world.start(town, stranger, [invoice])
    assert status == 404, body
    assert body["error"]["code"] == "invoice_not_found"


async def test_two_simultaneous_starts_of_one_invoice_one_wins_and_the_others_are_told_until_when(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)

    answers = await asyncio.gather(*(world.start(town, account, [invoice]) for _ in range(6)))

    won = [body for status, body in answers if status == 201]
    lost = [body for status, body in answers if status != 201]
    assert len(won) == 1, answers
    assert {body["error"]["code"] for body in lost} == {"invoice_locked"}, lost
    for body in lost:
        assert "déjà en cours" in body["error"]["message"]
        assert body["error"]["details"][0]["invoice_id"] == invoice["invoice_id"]
        until = datetime.fromisoformat(body["error"]["details"][0]["locked_until"])
        assert until == datetime.fromisoformat(won[0]["locked_until"])
    attempts = await world.rows("SELECT state FROM payment_attempts WHERE town_id = $1", town.town_id)
    assert [row["state"] for row in attempts] == ["pending"]
    operations = [
        op for op in (await world.sim("GET", "/operations"))["operations"] if op["idop"] == won[0]["idop"]
    ]
    assert len(operations) == 1


async def test_the_lock_holds_for_another_account_paying_the_same_invoice_without_showing_whose(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    first, second = world.account(), world.account()
    invoice = world.invoices.add_invoice(town, first)
    world.invoices.invoices[(town.town_id, second)] = {uuid.UUID(invoice["invoice_id"]): invoice}
    await world.started(town, first, [invoice])

    status, body = await world.start(town, second, [invoice])
    assert status == 409
    assert body["error"]["code"] == "invoice_locked"
    (lock,) = await world.locks(town, second, [invoice])
    assert lock["own"] is False
    assert lock["payment_id"] is None


async def test_a_grouped_payment_is_refused_when_one_of_its_invoices_is_locked(world: PaymentsWorld) -> None:
    town = await world.town()
    account = world.account()
    one, two = world.invoices.add_invoice(town, account), world.invoices.add_invoice(town, account)
    await world.started(town, account, [two])
    status, body = await world.start(town, account, [one, two])
    assert status == 409
    assert body["error"]["code"] == "invoice_locked"
    assert [d["invoice_id"] for d in body["error"]["details"]] == [two["invoice_id"]]
    # Nothing of the refused attempt remains: the first invoice is free.
    assert await world.locks(town, account, [one]) == []


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"kind": "fault", "code": "A2"}, 502, "payfip_rejected"),
        (
            {"kind": "fault", "code": "X1", "error_type": "TechIndisponibiliteErreur"},
            503,
            "payfip_unavailable",
        ),
        ({"kind": "unavailable"}, 503, "payfip_unavailable"),
        ({"kind": "http_503"}, 503, "payfip_unavailable"),
        ({"kind": "timeout"}, 503, "payfip_unavailable"),
        ({"kind": "malformed_xml"}, 503, "payfip_unavailable"),
    ],
)
async def test_payfip_faults_at_creation_give_a_clear_message_release_the_lock_and_lose_nothing(
    world: PaymentsWorld, fault: dict[str, str], status: int, code: str
) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)
    await world.sim("POST", "/faults", {"operation": "creerPaiementSecurise", "count": 1} | fault)

    answer_status, body = await world.start(town, account, [invoice])

    assert answer_status == status, body
    assert body["error"]["code"] == code
    assert "Aucun paiement n'a été effectué" in body["error"]["message"]
    attempt = await world.row(
        "SELECT state, start_error_code FROM payment_attempts WHERE town_id = $1", town.town_id
    )
    assert attempt["state"] == "failed_to_start"
    assert attempt["start_error_code"]
    assert await world.locks(town, account, [invoice]) == []
    calls = await world.rows(
        "SELECT operation, outcome FROM payfip_calls c JOIN payment_attempts a USING (payment_id) WHERE a.town_id = $1",
        town.town_id,
    )
    assert [(c["operation"], c["outcome"]) for c in calls] == [
        ("creerPaiementSecurise", "fault" if status == 502 else "unavailable")
    ]
    # The resident tries again and it works.
    again = await world.started(town, account, [invoice])
    assert again["state"] == "pending"


async def test_when_the_invoices_service_cannot_answer_no_payment_starts(world: PaymentsWorld) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)
    world.invoices.available = False
    status, body = await world.start(town, account, [invoice])
    assert status == 503
    assert body["error"]["code"] == "invoices_unavailable"
    assert await world.rows("SELECT 1 FROM payment_attempts WHERE town_id = $1", town.town_id) == []


async def test_an_invoice_the_invoices_service_cancelled_is_refused_even_if_its_answer_is_stale(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)  # the stand-in keeps saying "payable"
    await world.publish(
        events.InvoiceCancelled(
            town_id=town.town_id,
            invoice_id=uuid.UUID(invoice["invoice_id"]),
            number=invoice["number"],
            reason="erreur",
        )
    )

    async def refused() -> bool:
        status, body = await world.start(town, account, [invoice])
        assert status in (201, 409), body
        return status == 409 and body["error"]["code"] == "invoice_closed"

    await eventually(refused, what="the cancellation reached payments")


async def test_a_rejected_declaration_makes_the_invoice_payable_again(world: PaymentsWorld) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account)
    invoice_id = uuid.UUID(invoice["invoice_id"])
    await world.publish(
        events.PaymentDeclared(
            town_id=town.town_id,
            invoice_id=invoice_id,
            number=invoice["number"],
            account_id=account,
            method="cheque",
            paid_on=datetime(2026, 3, 1).date(),
        )
    )

    async def closure() -> str | None:
        row = await world.row("SELECT status FROM invoice_closures WHERE invoice_id = $1", invoice_id)
        return row["status"] if row else None

    assert await eventually(closure) == "declared"
    status, body = await world.start(town, account, [invoice])
    assert (status, body["error"]["code"]) == (409, "invoice_closed")
    assert "déclarée réglée" in body["error"]["message"]

    await world.publish(
        events.DeclarationAnswered(
            town_id=town.town_id,
            invoice_id=invoice_id,
            number=invoice["number"],
            account_id=account,
            accepted=False,
        )
    )

    async def reopened() -> bool:
        return await closure() == "open"

    await eventually(reopened, what="the rejected declaration reached payments")
    await world.started(town, account, [invoice])


async def test_the_preview_shows_what_the_payment_screen_needs_and_stores_nothing(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account = world.account()
    invoice = world.invoices.add_invoice(town, account, amount_cents=3750)
    status, preview = await world.payments(
        "POST",
        f"/towns/{town.town_id}/accounts/{account}/payments/preview",
        {"invoice_ids": [invoice["invoice_id"]], "email": "marie.dupont@example.org"},
    )
    assert status == 200, preview
    assert preview["numcli"] == "001964"
    assert preview["amount_cents"] == 3750
    assert preview["reference"] == invoice["payfip_reference"]
    assert preview["regie"]["name"] == "REGIE CENTRALISEE"
    assert await world.rows("SELECT 1 FROM payment_attempts WHERE town_id = $1", town.town_id) == []
    assert await world.locks(town, account, [invoice]) == []

    await world.started(town, account, [invoice])
    status, body = await world.payments(
        "POST",
        f"/towns/{town.town_id}/accounts/{account}/payments/preview",
        {"invoice_ids": [invoice["invoice_id"]], "email": "marie.dupont@example.org"},
    )
    assert (status, body["error"]["code"]) == (409, "invoice_locked")
