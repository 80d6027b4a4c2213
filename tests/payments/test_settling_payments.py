"""Settling payments through the real processes: PayFiP's notification through the gateway, the browser's
return, the reconciler; every outcome; duplicate, late, early, missing and forged notifications."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest

from shared.contracts import events
from shared.contracts.values import PARIS
from tests.payments.conftest import FIRST_POLL, GIVE_UP, OPERATION_WINDOW, PaymentsWorld
from tests.support.suite import TownHandle
from tests.support.waiting import eventually


async def start_one(
    world: PaymentsWorld, **invoice: Any
) -> tuple[TownHandle, uuid.UUID, dict[str, Any], Any]:
    town = await world.town()
    account = world.account()
    bill = world.invoices.add_invoice(town, account, **invoice)
    payment = await world.started(town, account, [bill], email=f"r{uuid.uuid4().hex[:8]}@example.org")
    return town, account, bill, payment


async def settled_by(world: PaymentsWorld, payment: Any) -> str:
    row = await world.row(
        "SELECT settled_by FROM payment_attempts WHERE payment_id = $1", uuid.UUID(payment["payment_id"])
    )
    return str(row["settled_by"])


@pytest.mark.parametrize(("resultrans", "method"), [("P", "carte bancaire"), ("V", "prélèvement SEPA")])
async def test_a_payment_notified_through_the_gateway_is_confirmed_once_and_a_receipt_is_sent(
    world: PaymentsWorld, resultrans: str, method: str
) -> None:
    town, account, bill, payment = await start_one(world, amount_cents=3750)
    email = (
        await world.row(
            "SELECT email FROM payment_attempts WHERE payment_id = $1", uuid.UUID(payment["payment_id"])
        )
    )["email"]

    await world.pay(payment["idop"], resultrans)  # the browser never comes back: only the notification

    paid = await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await settled_by(world, payment) == "notification"
    assert paid["result_code"] == resultrans
    assert paid["authorisation_number"]
    assert paid["paid_at"] is not None
    assert paid["lock_active"] is False
    assert await world.locks(town, account, [bill]) == []
    assert await world.succeeded_events(payment["payment_id"]) == 1
    (receipt,) = await world.suite.wait_for_mail(email, subject_contains="Reçu")
    assert "37,50" in receipt.subject
    assert method in receipt.part("plain")
    assert bill["number"] in receipt.part("plain")
    assert paid["authorisation_number"] in receipt.part("plain")
    # Paid: the portal refuses a second payment at once, before the invoices service even hears of it.
    status, again = await world.start(town, account, [bill])
    assert (status, again["error"]["code"]) == (409, "invoice_closed")
    assert "déjà réglée" in again["error"]["message"]

    envelope = await world.row(
        "SELECT envelope FROM outbox WHERE event_type = 'payments.payment_succeeded'"
        " AND envelope->'payload'->>'payment_id' = $1",
        payment["payment_id"],
    )
    event = events.PaymentSucceeded.model_validate(envelope["envelope"]["payload"])
    assert event.account_id == account
    assert event.reference == bill["payfip_reference"]
    assert event.amount_cents == 3750
    assert [(i.invoice_id, i.amount_cents) for i in event.items] == [(uuid.UUID(bill["invoice_id"]), 3750)]
    assert event.result_code == resultrans
    operation = await world.sim("GET", f"/operations/{payment['idop']}")
    dattrans, heurtrans = operation["result"]["dattrans"], operation["result"]["heurtrans"]
    local = event.paid_at.astimezone(PARIS)
    assert (local.strftime("%d%m%Y"), local.strftime("%H%M")) == (dattrans, heurtrans)


async def test_a_resident_paying_on_payfips_page_comes_back_to_the_town_and_sees_it_paid(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world, amount_cents=3750)
    async with aiohttp.ClientSession() as browser:
        async with browser.get(payment["redirect_url"]) as page:
            assert page.status == 200
            html = await page.text()
        assert "37,50" in html
        forms = re.findall(r'<form method="post" action="([^"]+)">(.*?)</form>', html, re.S)
        action, fields = next((action, inner) for action, inner in forms if 'name="choix" value="P"' in inner)
        data = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', fields))
        async with browser.post(action, data=data, allow_redirects=False) as chosen:
            assert chosen.status in (302, 303)
            location = chosen.headers["Location"]
    assert location == f"{town.public_url}/reglement/retour?idop={payment['idop']}"

    idop = location.split("idop=", 1)[1]
    status, returned = await world.returned(town, account, idop)
    assert status == 200
    assert returned["state"] == "paid"
    assert await world.succeeded_events(payment["payment_id"]) == 1


async def test_duplicate_notifications_settle_once(world: PaymentsWorld) -> None:
    town, account, _, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"mode": "duplicate", "copies": 4})
    await world.pay(payment["idop"], "P")

    await world.wait_for_state(town, account, payment["payment_id"], "paid")

    async def all_sent() -> bool:
        attempts = (await world.sim("GET", "/notifications"))["attempts"]
        mine = [a for a in attempts if a["idop"] == payment["idop"] and a["sent_at"]]
        return len(mine) >= 4

    await eventually(all_sent, what="the four copies were delivered")
    await asyncio.sleep(0.3)
    assert await world.succeeded_events(payment["payment_id"]) == 1
    rows = await world.rows(
        "SELECT state, settled_at FROM payment_attempts WHERE payment_id = $1",
        uuid.UUID(payment["payment_id"]),
    )
    assert [r["state"] for r in rows] == ["paid"]


async def test_a_missing_notification_is_made_up_for_by_the_reconciler(world: PaymentsWorld) -> None:
    town, account, bill, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"mode": "drop"})
    await world.pay(payment["idop"], "V")

    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await settled_by(world, payment) == "reconciler"
    assert await world.succeeded_events(payment["payment_id"]) == 1
    assert await world.locks(town, account, [bill]) == []


async def test_a_late_notification_after_the_reconciler_settled_changes_nothing(world: PaymentsWorld) -> None:
    town, account, _, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"mode": "delay", "delay_seconds": 4.5})
    await world.pay(payment["idop"], "P")

    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await settled_by(world, payment) == "reconciler"

    async def delivered() -> bool:
        attempts = (await world.sim("GET", "/notifications"))["attempts"]
        return any(a["idop"] == payment["idop"] and a["sent_at"] and a["status"] == 200 for a in attempts)

    await eventually(delivered, what="the late notification was delivered")
    assert await world.succeeded_events(payment["payment_id"]) == 1
    assert (await world.payment(town, account, payment["payment_id"]))["state"] == "paid"


async def test_an_early_notification_before_any_result_leaves_the_payment_pending(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world)
    status, body = await world.notify(data={"idop": payment["idop"]})
    assert (status, body) == (200, b"")
    assert (await world.payment(town, account, payment["payment_id"]))["state"] == "pending"

    await world.pay(payment["idop"], "P")
    await world.wait_for_state(town, account, payment["payment_id"], "paid")


async def test_the_browser_coming_back_before_the_notification_gets_the_confirmed_result(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world)
    await world.pay(payment["idop"], "P", notify=False)

    status, returned = await world.returned(town, account, payment["idop"])

    assert status == 200, returned
    assert returned["state"] == "paid"
    assert returned["payment_id"] == payment["payment_id"]
    assert await settled_by(world, payment) == "return"
    # The notification that follows changes nothing.
    await world.notify(data={"idop": payment["idop"]})
    assert await world.succeeded_events(payment["payment_id"]) == 1


async def test_the_browser_coming_back_before_any_result_is_told_the_payment_is_being_checked(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world)
    status, returned = await world.returned(town, account, payment["idop"])
    assert status == 200
    assert (returned["state"], returned["state_label"], returned["final"]) == (
        "pending",
        "en cours de vérification",
        False,
    )


@pytest.mark.parametrize("kind", ["http_503", "timeout", "malformed_xml", "unavailable"])
async def test_payfip_failing_when_the_browser_comes_back_says_being_checked_and_loses_nothing(
    world: PaymentsWorld, kind: str
) -> None:
    town, account, _, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"mode": "drop"})
    await world.pay(payment["idop"], "P")
    await world.sim(
        "POST", "/faults", {"operation": "recupererDetailPaiementSecurise", "kind": kind, "count": 1}
    )

    status, returned = await world.returned(town, account, payment["idop"])

    assert status == 200, returned
    assert (returned["state"], returned["state_label"]) == ("pending", "en cours de vérification")
    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await world.succeeded_events(payment["payment_id"]) == 1


async def test_notifications_come_in_with_any_spelling_from_body_or_query(world: PaymentsWorld) -> None:
    town, account, _, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"field": "idOp", "in_query": True})
    await world.pay(payment["idop"], "P")
    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await settled_by(world, payment) == "notification"


@pytest.mark.parametrize("resultrans", ["R", "Z"])
async def test_a_refusal_ends_the_lock_at_once_and_the_invoice_can_be_paid_again(
    world: PaymentsWorld, resultrans: str
) -> None:
    town, account, bill, payment = await start_one(world)
    status, body = await world.start(town, account, [bill])
    assert (status, body["error"]["code"]) == (409, "invoice_locked")

    await world.pay(payment["idop"], resultrans)

    refused = await world.wait_for_state(town, account, payment["payment_id"], "refused")
    assert refused["result_code"] == resultrans
    assert refused["authorisation_number"] is None
    assert refused["lock_active"] is False
    assert await world.locks(town, account, [bill]) == []
    assert await world.succeeded_events(payment["payment_id"]) == 0
    again = await world.started(town, account, [bill])
    assert again["idop"] != payment["idop"]


async def test_an_abandon_keeps_the_lock_until_the_15_minutes_are_over_then_ends(
    world: PaymentsWorld,
) -> None:
    town, account, bill, payment = await start_one(world)
    await world.pay(payment["idop"], "A", notify=False)

    status, returned = await world.returned(town, account, payment["idop"])
    assert status == 200
    assert returned["state"] == "pending"
    assert returned["provisional_result"] == "A"
    window_end = datetime.fromisoformat(returned["created_at"]) + timedelta(seconds=OPERATION_WINDOW)
    assert datetime.fromisoformat(returned["locked_until"]) == window_end
    (lock,) = await world.locks(town, account, [bill])
    assert datetime.fromisoformat(lock["locked_until"]) == window_end

    abandoned = await world.wait_for_state(
        town, account, payment["payment_id"], "abandoned", timeout=OPERATION_WINDOW + 8
    )
    assert abandoned["result_code"] == "A"
    assert await world.locks(town, account, [bill]) == []
    assert await world.succeeded_events(payment["payment_id"]) == 0


async def test_an_abandon_that_turns_into_a_payment_within_the_15_minutes_is_a_payment(
    world: PaymentsWorld,
) -> None:
    await world.sim("POST", "/quirks", {"abandon_can_become_paid": True})
    town, account, _, payment = await start_one(world)
    await world.pay(payment["idop"], "A", notify=False)
    _, returned = await world.returned(town, account, payment["idop"])
    assert (returned["state"], returned["provisional_result"]) == ("pending", "A")

    await world.pay(payment["idop"], "P")

    paid = await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert paid["provisional_result"] is None
    assert await world.succeeded_events(payment["payment_id"]) == 1


async def test_a_payment_never_made_expires_after_the_give_up_age_and_a_late_payment_is_flagged(
    world: PaymentsWorld,
) -> None:
    town, account, bill, payment = await start_one(world)

    expired = await world.wait_for_state(town, account, payment["payment_id"], "expired", timeout=GIVE_UP + 8)
    assert expired["lock_active"] is False
    assert await world.locks(town, account, [bill]) == []

    # PayFiP's side still let the resident pay (its 15 minutes are not over on its clock): the portal
    # had given up, so this is not silently taken as a payment but flagged for the office.
    await world.pay(payment["idop"], "P")

    async def flagged() -> Any:
        _, body = await world.payments("GET", f"/incidents?town_id={town.town_id}")
        return [i for i in body["incidents"] if i["kind"] == "paid_after_final"]

    (incident,) = await eventually(flagged, what="the late payment was flagged")
    assert incident["payment_id"] == payment["payment_id"]
    assert (await world.payment(town, account, payment["payment_id"]))["state"] == "expired"
    assert await world.succeeded_events(payment["payment_id"]) == 0


async def test_an_idop_purged_by_payfip_expires_the_attempt(world: PaymentsWorld) -> None:
    town, account, bill, payment = await start_one(world)
    await world.sim("POST", "/clock", {"advance_seconds": 16 * 60})
    await world.sim("POST", "/purge")

    await world.wait_for_state(town, account, payment["payment_id"], "expired", timeout=OPERATION_WINDOW + 8)
    assert await world.locks(town, account, [bill]) == []
    codes = await world.rows(
        "SELECT code FROM payfip_calls WHERE payment_id = $1 AND operation = 'recupererDetailPaiementSecurise'",
        uuid.UUID(payment["payment_id"]),
    )
    assert "P1" in {row["code"] for row in codes}


async def test_a_result_that_differs_from_the_attempt_is_flagged_and_is_not_a_payment(
    world: PaymentsWorld,
) -> None:
    town, account, bill, payment = await start_one(world, amount_cents=2500)
    world.proxy.detail_overrides[payment["idop"]] = {"montant": "250"}

    await world.pay(payment["idop"], "P")

    mismatch = await world.wait_for_state(town, account, payment["payment_id"], "mismatch")
    assert mismatch["state_label"] == "anomalie signalée au service de facturation"
    assert await world.succeeded_events(payment["payment_id"]) == 0
    status, body = await world.payments("GET", f"/incidents?town_id={town.town_id}")
    assert status == 200
    (incident,) = body["incidents"]
    assert incident["kind"] == "mismatch"
    assert incident["details"]["differences"] == {"montant": {"expected": 2500, "received": 250}}
    # The office looks first: the invoice stays locked until the lock's end.
    assert len(await world.locks(town, account, [bill])) == 1


async def test_paying_an_invoice_cancelled_meanwhile_is_a_payment_flagged_for_the_office(
    world: PaymentsWorld,
) -> None:
    town, account, bill, payment = await start_one(world)
    await world.publish(
        events.InvoiceCancelled(
            town_id=town.town_id,
            invoice_id=uuid.UUID(bill["invoice_id"]),
            number=bill["number"],
            reason="doublon",
        )
    )

    async def closed() -> bool:
        return bool(
            await world.row(
                "SELECT 1 FROM invoice_closures WHERE invoice_id = $1", uuid.UUID(bill["invoice_id"])
            )
        )

    await eventually(closed, what="the cancellation reached payments")
    await world.pay(payment["idop"], "P")

    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    assert await world.succeeded_events(payment["payment_id"]) == 1
    _, body = await world.payments("GET", f"/incidents?town_id={town.town_id}")
    assert [i["kind"] for i in body["incidents"]] == ["paid_closed_invoice"]


async def test_notifications_returns_and_reconcilers_racing_make_one_transition_and_one_event(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world)
    await world.sim("POST", "/notifications", {"mode": "drop"})
    await world.pay(payment["idop"], "P")

    answers = await asyncio.gather(
        *(world.notify(data={"idop": payment["idop"]}) for _ in range(8)),
        *(world.returned(town, account, payment["idop"]) for _ in range(4)),
        *(world.payments("POST", "/payfip/notifications", {"idop": payment["idop"]}) for _ in range(4)),
    )

    assert all(status == 200 for status, _ in answers)
    await world.wait_for_state(town, account, payment["payment_id"], "paid")
    await asyncio.sleep(FIRST_POLL + 0.5)  # let both replicas' reconcilers have their go too
    assert await world.succeeded_events(payment["payment_id"]) == 1


async def test_forged_and_garbage_notifications_change_nothing_and_are_answered_200_empty(
    world: PaymentsWorld,
) -> None:
    town, account, _, payment = await start_one(world)
    unknown = str(uuid.uuid1())
    for call in (
        world.notify(data={"idop": unknown}),
        world.notify(data={"IDOP": "'; DROP TABLE payment_attempts; --"}),
        world.notify(data=b"\x00\xff garbage"),
        world.notify(data="x" * 100_000),
        world.notify(params={"idOp": unknown}, method="GET"),
        world.notify(data={"idop": payment["idop"]}),  # a real idOp: only a question to PayFiP
        world.notify(),
    ):
        status, body = await call
        assert (status, body) == (200, b"")

    assert (await world.payment(town, account, payment["payment_id"]))["state"] == "pending"
    status, known = await world.payments("POST", "/payfip/notifications", {"idop": unknown})
    assert (status, known) == (200, {"known": False, "state": None})
    assert (
        await world.rows(
            "SELECT 1 FROM payment_attempts WHERE state <> 'pending' AND town_id = $1", town.town_id
        )
        == []
    )


# --- «Mes règlements» -----------------------------------------------------------------------------------


async def test_my_payments_lists_the_accounts_payments_newest_first_with_their_state_and_authorisation(
    world: PaymentsWorld,
) -> None:
    town = await world.town()
    account, neighbour = world.account(), world.account()
    bills = [world.invoices.add_invoice(town, account, amount_cents=1000 * (n + 1)) for n in range(3)]
    first = await world.started(town, account, [bills[0]])
    await world.pay(first["idop"], "P")
    await world.wait_for_state(town, account, first["payment_id"], "paid")
    second = await world.started(town, account, [bills[1], bills[2]])
    await world.pay(second["idop"], "R")
    await world.wait_for_state(town, account, second["payment_id"], "refused")
    other = world.invoices.add_invoice(town, neighbour)
    await world.started(town, neighbour, [other])

    status, page = await world.payments("GET", f"/towns/{town.town_id}/accounts/{account}/payments")
    assert status == 200
    assert page["total"] == 2
    assert [p["payment_id"] for p in page["payments"]] == [second["payment_id"], first["payment_id"]]
    listed_second, listed_first = page["payments"]
    assert (listed_first["state"], listed_first["amount_cents"]) == ("paid", 1000)
    assert listed_first["authorisation_number"]
    assert (listed_second["state"], listed_second["amount_cents"]) == ("refused", 5000)
    assert [i["number"] for i in listed_second["items"]] == [bills[1]["number"], bills[2]["number"]]

    status, one = await world.payments(
        "GET", f"/towns/{town.town_id}/accounts/{account}/payments?per_page=1&page=2"
    )
    assert [p["payment_id"] for p in one["payments"]] == [first["payment_id"]]


async def test_another_accounts_payment_and_idop_are_not_found(world: PaymentsWorld) -> None:
    town, account, _, payment = await start_one(world)
    stranger = world.account()
    status, _ = await world.payments(
        "GET", f"/towns/{town.town_id}/accounts/{stranger}/payments/{payment['payment_id']}"
    )
    assert status == 404
    status, _ = await world.returned(town, stranger, payment["idop"])
    assert status == 404
    other_town = await world.town()
    status, _ = await world.payments(
        "GET", f"/towns/{other_town.town_id}/accounts/{account}/payments/{payment['payment_id']}"
    )
    assert status == 404
    status, body = await world.payments("GET", f"/towns/{town.town_id}/accounts/{stranger}/payments")
    assert (status, body["total"]) == (200, 0)
