"""The payments domain: what can be paid together, the grouping reference, settlement and the schedule."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments import domain
from services.payments.domain import (
    Attempt,
    ConfirmedResult,
    IncidentKind,
    Observation,
    PayableInvoice,
    PaymentState,
    Regie,
    TimePolicy,
)

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
TOWN = uuid.uuid4()
ACCOUNT = uuid.uuid4()
POLICY = TimePolicy()

CENTRALE = Regie(uuid.uuid4(), "CENTRALE", "REGIE CENTRALISEE", "001964", "T", True, True)
EAU = Regie(uuid.uuid4(), "EAU", "Régie de l'eau", "010203", "W", True, False)


def invoice(**changes: object) -> PayableInvoice:
    values: dict[str, object] = {
        "invoice_id": uuid.uuid4(),
        "number": "2026-001-000123",
        "amount_cents": 2500,
        "payfip_reference": "2026001000123",
        "payfip_year": 2026,
        "object": "Cantine de mars",
        "regie": CENTRALE,
        "payable": True,
        "reason": None,
    } | changes
    return PayableInvoice(**values)  # type: ignore[arg-type]


def plan(
    invoices: list[PayableInvoice],
    *,
    requested: list[uuid.UUID] | None = None,
    email: str = "Marie@Example.org",
):
    return domain.plan_payment(
        requested if requested is not None else [i.invoice_id for i in invoices],
        invoices,
        town_id=TOWN,
        account_id=ACCOUNT,
        email=email,
        payment_id=uuid.uuid4(),
        now=NOW,
        lock_duration=timedelta(hours=2),
    )


# --- planning a payment ------------------------------------------------------------------------------


def test_one_invoice_is_paid_with_its_own_reference_year_and_amount() -> None:
    single = invoice()
    p = plan([single])
    assert p.reference == "2026001000123"
    assert not p.grouped
    assert p.exer == "2026"
    assert p.amount_cents == 2500
    assert p.email == "marie@example.org"
    assert p.locked_until == NOW + timedelta(hours=2)
    assert p.items == (domain.PaymentItem(single.invoice_id, single.number, 2500),)


def test_an_invoice_without_payfip_reference_uses_its_number_in_letters_and_digits() -> None:
    assert plan([invoice(payfip_reference=None, number="F-2026/0042")]).reference == "F20260042"


def test_an_invoice_whose_reference_payfip_would_refuse_cannot_be_paid_online() -> None:
    with pytest.raises(domain.ReferenceNotPayable):
        plan([invoice(payfip_reference=None, number="F-12")])


def test_several_invoices_of_a_grouping_regie_make_one_payment_with_a_grouping_reference() -> None:
    first, second = invoice(amount_cents=1000), invoice(amount_cents=2550, number="2026-001-000124")
    p = plan([first, second])
    assert p.grouped
    assert p.amount_cents == 3550
    assert re.fullmatch(r"G20260310[0-9A-Z]{10}", p.reference)
    assert [i.amount_cents for i in p.items] == [1000, 2550]
    assert p.exer == "2026"


def test_the_same_invoice_twice_in_the_request_is_paid_once() -> None:
    single = invoice()
    p = plan([single], requested=[single.invoice_id, single.invoice_id])
    assert not p.grouped
    assert p.amount_cents == 2500


def test_invoices_of_two_regies_are_refused_together() -> None:
    with pytest.raises(domain.SeveralRegies):
        plan([invoice(), invoice(regie=EAU)])


def test_several_invoices_of_a_regie_without_grouped_payment_are_refused() -> None:
    with pytest.raises(domain.GroupedPaymentNotAllowed) as raised:
        plan([invoice(regie=EAU), invoice(regie=EAU)])
    assert "une par une" in raised.value.message


def test_a_closed_regie_refuses_online_payment() -> None:
    closed = replace(CENTRALE, online_payment_enabled=False)
    with pytest.raises(domain.OnlinePaymentDisabled):
        plan([invoice(regie=closed)])


@pytest.mark.parametrize(
    "reason", ["paid", "cancelled", "declared", "regie_closed", "amount_out_of_bounds", None]
)
def test_an_invoice_the_invoices_service_says_is_not_payable_is_refused_with_its_reason(
    reason: str | None,
) -> None:
    with pytest.raises(domain.InvoiceNotPayable) as raised:
        plan([invoice(payable=False, reason=reason, number="F-77")])
    assert "F-77" in raised.value.message
    assert raised.value.details == [
        {"invoice_id": raised.value.details[0]["invoice_id"], "number": "F-77", "reason": reason}  # type: ignore[index]
    ]


@pytest.mark.parametrize("amounts", [[99], [50, 49], [10_000_001], [5_000_000, 5_000_001]])
def test_totals_outside_payfip_bounds_are_refused(amounts: list[int]) -> None:
    with pytest.raises(domain.AmountOutOfBounds):
        plan([invoice(amount_cents=a) for a in amounts])


@pytest.mark.parametrize("amount", [0, -500])
def test_an_invoice_with_nothing_to_pay_is_refused_even_in_a_group_that_would_reach_the_minimum(
    amount: int,
) -> None:
    with pytest.raises(domain.InvoiceNotPayable):
        plan([invoice(amount_cents=5000), invoice(amount_cents=amount)])


@pytest.mark.parametrize("amounts", [[100], [10_000_000], [60, 40]])
def test_totals_at_payfip_bounds_are_accepted(amounts: list[int]) -> None:
    assert plan([invoice(amount_cents=a) for a in amounts]).amount_cents == sum(amounts)


def test_an_invoice_missing_from_the_answer_is_not_found() -> None:
    with pytest.raises(domain.InvoiceNotFound):
        plan([invoice()], requested=[uuid.uuid4()])


@pytest.mark.parametrize("email", ["not-an-address", "marie dupont@example.org", "x" * 70 + "@example.org"])
def test_an_address_payfip_would_refuse_is_refused_first(email: str) -> None:
    with pytest.raises(domain.InvalidPaymentEmail):
        plan([invoice()], email=email)


@given(
    st.uuids(),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)),
)
def test_grouping_references_are_always_accepted_by_payfip(payment_id: uuid.UUID, moment: datetime) -> None:
    reference = domain.grouping_reference(payment_id, moment)
    assert re.fullmatch(r"[A-Za-z0-9]{6,30}", reference)
    assert reference.startswith("G")


def test_grouping_references_use_the_paris_date() -> None:
    late_evening_utc = datetime(2026, 6, 30, 22, 30, tzinfo=UTC)  # already 1 July in Paris
    assert domain.grouping_reference(uuid.uuid4(), late_evening_utc).startswith("G20260701")


# --- settling ----------------------------------------------------------------------------------------


def attempt(**changes: object) -> Attempt:
    values: dict[str, object] = {
        "payment_id": uuid.uuid4(),
        "state": PaymentState.PENDING,
        "created_at": NOW,
        "locked_until": NOW + timedelta(hours=2),
        "idop": "cc0cb210-1cd4-11ea-8cca-0213ad91a103",
        "numcli": "001964",
        "refdet": "2026001000123",
        "amount_cents": 2500,
    } | changes
    return Attempt(**values)  # type: ignore[arg-type]


def result(resultrans: str = "P", **changes: object) -> Observation:
    values: dict[str, object] = {
        "resultrans": resultrans,
        "idop": "cc0cb210-1cd4-11ea-8cca-0213ad91a103",
        "numcli": "001964",
        "refdet": "2026001000123",
        "montant": 2500,
        "numauto": "112233445566-tip" if resultrans in "PV" else None,
        "transaction_time": NOW + timedelta(minutes=3),
    } | changes
    return Observation("result", ConfirmedResult(**values))  # type: ignore[arg-type]


LATER = NOW + timedelta(minutes=4)


@pytest.mark.parametrize("code", ["P", "V"])
def test_a_matching_paid_result_pays_and_releases_the_lock(code: str) -> None:
    settlement = domain.settle(attempt(), result(code), LATER, POLICY)
    assert settlement.new_state is PaymentState.PAID
    assert settlement.release_lock
    assert settlement.incident is None


@pytest.mark.parametrize(
    "changes",
    [
        {"montant": 2499},
        {"montant": None},
        {"numcli": "1964"},
        {"refdet": "2026001000124"},
        {"idop": "other"},
    ],
)
def test_a_result_that_differs_from_the_attempt_is_a_mismatch_not_a_payment(
    changes: dict[str, object],
) -> None:
    settlement = domain.settle(attempt(), result("P", **changes), LATER, POLICY)
    assert settlement.new_state is PaymentState.MISMATCH
    assert settlement.incident is IncidentKind.MISMATCH
    assert not settlement.release_lock  # the office looks first; the lock runs to its end


@pytest.mark.parametrize("code", ["R", "Z"])
def test_a_refusal_is_final_and_ends_the_lock_at_once(code: str) -> None:
    settlement = domain.settle(attempt(), result(code), LATER, POLICY)
    assert settlement.new_state is PaymentState.REFUSED
    assert settlement.release_lock


def test_an_abandon_within_the_15_minutes_stays_pending_with_the_lock_shortened_to_their_end() -> None:
    settlement = domain.settle(attempt(), result("A"), LATER, POLICY)
    assert settlement.new_state is None
    assert settlement.provisional_result == "A"
    assert settlement.locked_until == NOW + timedelta(minutes=15)
    assert settlement.next_poll_at == NOW + timedelta(minutes=15)


def test_an_abandon_after_the_15_minutes_is_final() -> None:
    settlement = domain.settle(attempt(), result("A"), NOW + timedelta(minutes=15), POLICY)
    assert settlement.new_state is PaymentState.ABANDONED
    assert settlement.release_lock


def test_no_result_yet_stays_pending_and_is_asked_again_later() -> None:
    settlement = domain.settle(attempt(polls=0), Observation("no_result_yet"), LATER, POLICY)
    assert settlement.new_state is None
    assert settlement.next_poll_at == LATER + timedelta(minutes=5)


def test_no_result_after_two_hours_is_expired() -> None:
    settlement = domain.settle(attempt(), Observation("no_result_yet"), NOW + timedelta(hours=2), POLICY)
    assert settlement.new_state is PaymentState.EXPIRED
    assert settlement.release_lock


def test_an_unknown_idop_on_a_young_attempt_is_asked_again() -> None:
    settlement = domain.settle(attempt(), Observation("unknown_operation"), LATER, POLICY)
    assert settlement.new_state is None


def test_an_unknown_idop_once_its_window_is_over_is_expired() -> None:
    settlement = domain.settle(
        attempt(), Observation("unknown_operation"), NOW + timedelta(minutes=16), POLICY
    )
    assert settlement.new_state is PaymentState.EXPIRED


def test_payfip_unreachable_keeps_the_attempt_pending_with_retries_at_most_30_minutes_apart() -> None:
    settlement = domain.settle(attempt(polls=9), Observation("unavailable", error="HTTP 503"), LATER, POLICY)
    assert settlement.new_state is None
    assert settlement.next_poll_at is not None
    assert settlement.next_poll_at - LATER <= timedelta(minutes=30)


def test_payfip_unreachable_for_a_day_gives_up() -> None:
    settlement = domain.settle(attempt(), Observation("unavailable"), NOW + timedelta(hours=24), POLICY)
    assert settlement.new_state is PaymentState.EXPIRED


@pytest.mark.parametrize("state", [PaymentState.ABANDONED, PaymentState.EXPIRED, PaymentState.REFUSED])
def test_a_payment_confirmed_after_a_final_non_paid_state_is_flagged_not_applied(state: PaymentState) -> None:
    settlement = domain.settle(attempt(state=state), result("P"), LATER, POLICY)
    assert settlement.new_state is None
    assert settlement.incident is IncidentKind.PAID_AFTER_FINAL


@pytest.mark.parametrize("state", [PaymentState.PAID, PaymentState.MISMATCH])
def test_a_final_attempt_never_moves_again(state: PaymentState) -> None:
    for observation in (
        result("P"),
        result("R"),
        Observation("no_result_yet"),
        Observation("unknown_operation"),
    ):
        settlement = domain.settle(attempt(state=state), observation, NOW + timedelta(days=3), POLICY)
        assert settlement.new_state is None
        assert settlement.incident is None


# --- the reconciler's schedule -----------------------------------------------------------------------


def test_polls_back_off_from_5_to_30_minutes() -> None:
    gaps = [
        domain.next_poll(attempt(polls=n, created_at=NOW - timedelta(hours=1)), NOW, POLICY) - NOW
        for n in range(6)
    ]
    assert gaps == [timedelta(minutes=m) for m in (5, 10, 20, 30, 30, 30)]


def test_polls_never_jump_past_the_end_of_the_15_minutes_or_the_give_up_age() -> None:
    young = attempt(polls=3, created_at=NOW - timedelta(minutes=10))
    assert domain.next_poll(young, NOW, POLICY) == NOW + timedelta(minutes=5)
    old = attempt(polls=3, created_at=NOW - timedelta(minutes=110))
    assert domain.next_poll(old, NOW, POLICY) == NOW + timedelta(minutes=10)


def test_the_first_poll_waits_a_few_minutes() -> None:
    assert domain.first_poll(NOW, POLICY) == NOW + timedelta(minutes=5)


@given(
    polls=st.integers(min_value=0, max_value=1000),
    age_minutes=st.integers(min_value=0, max_value=60 * 48),
)
def test_the_next_poll_is_always_ahead_and_at_most_30_minutes_away(polls: int, age_minutes: int) -> None:
    subject = attempt(polls=polls, created_at=NOW - timedelta(minutes=age_minutes))
    moment = domain.next_poll(subject, NOW, POLICY)
    assert NOW < moment <= NOW + timedelta(minutes=30)


def test_state_labels_are_french() -> None:
    assert PaymentState.PENDING.label == "en cours de vérification"
    assert PaymentState.PAID.label == "payé"
    assert {s for s in PaymentState if not s.is_final} == {PaymentState.CREATED, PaymentState.PENDING}
