"""Payment attempts, their states, the in-progress lock and the reconciler's schedule. Pure: no I/O.

An attempt pays one invoice, or several invoices of one régie, in one PayFiP operation (one idOp):

    created ──(PayFiP gave an idOp)──▶ pending ──▶ paid | refused | abandoned | expired | mismatch
       └──(PayFiP refused or could not be reached)──▶ failed_to_start

`created` and `pending` are the only non-final states; a final state is reached exactly once (the
repository's UPDATE is guarded by the state, under a row lock). Only PayFiP's detail answer moves a
pending attempt: never the browser, never the notification's body.

The lock (R10): while an attempt may still succeed, its invoices cannot be paid again. It lasts
`lock_duration` (2 hours by default, the manuals' wait) from the attempt's creation, and ends early on a
final non-paid result (refused, abandoned, expired, failed to start). A mismatch keeps it to its end: the
office must look at the operation first. An abandon (A) is final only once the idOp's 15 minutes are over
(unsure whether it can still turn into P); until then the attempt stays pending and its lock is shortened
to the end of those 15 minutes.

Grouping reference (R9): PayFiP pays one `refdet` per operation, so a payment of several invoices needs its
own reference: `G` + the Paris date `YYYYMMDD` + 10 characters of Crockford base 32 drawn from the payment
id, e.g. `G20261123` + `3MZK8Q1V0D` = `G202611233MZK8Q1V0D` (19 characters, within PayFiP's
`[A-Za-z0-9]{6,30}`). The attempt's items record which invoices and amounts it covers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from shared.contracts.values import PARIS, InvalidEmail, format_datetime, normalise_email

MIN_AMOUNT_CENTS = 100
MAX_AMOUNT_CENTS = 10_000_000
MAX_INVOICES_PER_PAYMENT = 50
_REFDET = re.compile(r"^[A-Za-z0-9]{6,30}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class PaymentState(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    PAID = "paid"
    REFUSED = "refused"
    ABANDONED = "abandoned"
    EXPIRED = "expired"
    MISMATCH = "mismatch"
    FAILED_TO_START = "failed_to_start"

    @property
    def is_final(self) -> bool:
        return self not in NON_FINAL_STATES

    @property
    def label(self) -> str:
        """What a resident reads."""
        return STATE_LABELS[self]


NON_FINAL_STATES = frozenset({PaymentState.CREATED, PaymentState.PENDING})
# Final states that end the lock at once: the attempt can no longer take money.
RELEASING_STATES = frozenset(
    {PaymentState.REFUSED, PaymentState.ABANDONED, PaymentState.EXPIRED, PaymentState.FAILED_TO_START}
)
STATE_LABELS: dict[PaymentState, str] = {
    PaymentState.CREATED: "en cours",
    PaymentState.PENDING: "en cours de vérification",
    PaymentState.PAID: "payé",
    PaymentState.REFUSED: "refusé",
    PaymentState.ABANDONED: "abandonné",
    PaymentState.EXPIRED: "expiré",
    PaymentState.MISMATCH: "anomalie signalée au service de facturation",
    PaymentState.FAILED_TO_START: "non démarré",
}


class IncidentKind(StrEnum):
    MISMATCH = "mismatch"  # numcli, refdet, montant or idOp of PayFiP's answer differ from the attempt
    PAID_AFTER_FINAL = "paid_after_final"  # P/V reported for an attempt already refused/abandoned/expired
    PAID_CLOSED_INVOICE = "paid_closed_invoice"  # an invoice was cancelled, declared or paid elsewhere


# --- errors: what a start can run into ---------------------------------------------------------------


class PaymentRefused(Exception):
    """A payment cannot start; `code` is stable, the message is French and says what to do."""

    code = "payment_refused"
    status = 409

    def __init__(self, message: str, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvoiceNotFound(PaymentRefused):
    code = "invoice_not_found"
    status = 404


class InvalidPaymentEmail(PaymentRefused):
    code = "invalid_email"
    status = 422


class InvoiceNotPayable(PaymentRefused):
    code = "invoice_not_payable"


class InvoiceClosed(PaymentRefused):
    code = "invoice_closed"


class SeveralRegies(PaymentRefused):
    code = "several_regies"


class GroupedPaymentNotAllowed(PaymentRefused):
    code = "grouped_payment_not_allowed"


class OnlinePaymentDisabled(PaymentRefused):
    code = "online_payment_disabled"


class AmountOutOfBounds(PaymentRefused):
    code = "amount_out_of_bounds"


class ReferenceNotPayable(PaymentRefused):
    code = "reference_not_payable"


class InvoiceLocked(PaymentRefused):
    code = "invoice_locked"


NOT_PAYABLE_REASONS: dict[str, str] = {
    "paid": "est déjà réglée",
    "cancelled": "a été annulée",
    "declared": "a été déclarée réglée par un autre moyen",
    "regie_closed": "ne peut pas être réglée en ligne (paiement en ligne fermé pour cette régie)",
    "amount_out_of_bounds": "a un montant qui ne peut pas être réglé en ligne (entre 1 € et 100 000 €)",
}


# --- what the invoices service says is due ---------------------------------------------------------


@dataclass(frozen=True)
class Regie:
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str
    payfip_mode: Literal["T", "X", "W"]
    online_payment_enabled: bool
    grouped_payment_allowed: bool


@dataclass(frozen=True)
class PayableInvoice:
    """One invoice as the invoices service describes it at the moment of payment."""

    invoice_id: uuid.UUID
    number: str
    amount_cents: int
    payfip_reference: str | None
    payfip_year: int | None
    object: str
    regie: Regie
    payable: bool
    reason: str | None = None


@dataclass(frozen=True)
class PaymentItem:
    invoice_id: uuid.UUID
    number: str
    amount_cents: int


@dataclass(frozen=True)
class PaymentPlan:
    """Everything a new attempt needs before PayFiP is asked."""

    payment_id: uuid.UUID
    town_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    regie: Regie
    reference: str
    grouped: bool
    exer: str
    label: str
    amount_cents: int
    items: tuple[PaymentItem, ...]
    created_at: datetime
    locked_until: datetime


def grouping_reference(payment_id: uuid.UUID, created_at: datetime) -> str:
    """`G` + Paris date + 10 base-32 characters of the payment id (see the module's docstring)."""
    bits = payment_id.int & ((1 << 50) - 1)
    suffix = "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in reversed(range(10)))
    return "G" + created_at.astimezone(PARIS).strftime("%Y%m%d") + suffix


def invoice_reference(invoice: PayableInvoice) -> str:
    """The invoice's PayFiP reference; without one, its number stripped to letters and digits."""
    candidate = invoice.payfip_reference or re.sub(r"[^A-Za-z0-9]", "", invoice.number)
    if not _REFDET.match(candidate):
        raise ReferenceNotPayable(
            f"La facture {invoice.number} n'a pas de référence acceptée par PayFiP : "
            "elle ne peut pas être réglée en ligne. Contactez le service de facturation.",
            [{"invoice_id": str(invoice.invoice_id), "number": invoice.number}],
        )
    return candidate


def plan_payment(
    requested: Sequence[uuid.UUID],
    invoices: Sequence[PayableInvoice],
    *,
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    email: str,
    payment_id: uuid.UUID,
    now: datetime,
    lock_duration: timedelta,
) -> PaymentPlan:
    """Check that these invoices can be paid together now and describe the attempt; raise PaymentRefused
    (a subclass saying which rule) otherwise. Amounts come from `invoices`, never from the browser."""
    try:
        address = normalise_email(email)
    except InvalidEmail:
        raise InvalidPaymentEmail("Adresse de messagerie invalide pour le ticket PayFiP.") from None
    if not 6 <= len(address) <= 80:
        raise InvalidPaymentEmail("PayFiP demande une adresse de messagerie de 6 à 80 caractères.")
    wanted = list(dict.fromkeys(requested))
    if not wanted:
        raise InvoiceNotFound("Aucune facture choisie.")
    if len(wanted) > MAX_INVOICES_PER_PAYMENT:
        raise InvoiceNotPayable(f"Un paiement groupé couvre au plus {MAX_INVOICES_PER_PAYMENT} factures.")
    by_id = {invoice.invoice_id: invoice for invoice in invoices}
    missing = [invoice_id for invoice_id in wanted if invoice_id not in by_id]
    if missing:
        raise InvoiceNotFound("Facture introuvable.", [{"invoice_id": str(i)} for i in missing])
    chosen = [by_id[invoice_id] for invoice_id in wanted]

    not_payable = [invoice for invoice in chosen if not invoice.payable]
    if not_payable:
        first = not_payable[0]
        reason = NOT_PAYABLE_REASONS.get(first.reason or "", "ne peut pas être réglée en ligne")
        raise InvoiceNotPayable(
            f"La facture {first.number} {reason}.",
            [{"invoice_id": str(i.invoice_id), "number": i.number, "reason": i.reason} for i in not_payable],
        )
    without_amount = [invoice for invoice in chosen if invoice.amount_cents <= 0]
    if without_amount:
        raise InvoiceNotPayable(
            f"La facture {without_amount[0].number} n'a pas de montant à régler.",
            [
                {"invoice_id": str(i.invoice_id), "number": i.number, "reason": "no_amount"}
                for i in without_amount
            ],
        )
    regies = {invoice.regie.regie_id for invoice in chosen}
    if len(regies) > 1:
        raise SeveralRegies(
            "Les factures choisies relèvent de régies différentes : réglez-les séparément, régie par régie."
        )
    regie = chosen[0].regie
    if not regie.online_payment_enabled:
        raise OnlinePaymentDisabled(f"Le paiement en ligne n'est pas ouvert pour la régie « {regie.name} ».")
    grouped = len(chosen) > 1
    if grouped and not regie.grouped_payment_allowed:
        raise GroupedPaymentNotAllowed(
            f"La régie « {regie.name} » n'accepte pas le paiement de plusieurs factures en une fois : "
            "réglez-les une par une."
        )
    total = sum(invoice.amount_cents for invoice in chosen)
    if not MIN_AMOUNT_CENTS <= total <= MAX_AMOUNT_CENTS:
        raise AmountOutOfBounds(
            "PayFiP accepte les paiements de 1,00 € à 100 000,00 € ; ce montant ne peut pas être réglé en ligne.",
            {"amount_cents": total},
        )
    if grouped:
        reference = grouping_reference(payment_id, now)
        exer = str(now.astimezone(PARIS).year)
        label = f"Reglement de {len(chosen)} factures {regie.name}"
    else:
        single = chosen[0]
        reference = invoice_reference(single)
        year = single.payfip_year
        exer = str(year) if year is not None and 1000 <= year <= 9999 else str(now.astimezone(PARIS).year)
        label = f"Facture {single.number} {single.object}"
    return PaymentPlan(
        payment_id=payment_id,
        town_id=town_id,
        account_id=account_id,
        email=address,
        regie=regie,
        reference=reference,
        grouped=grouped,
        exer=exer,
        label=label,
        amount_cents=total,
        items=tuple(PaymentItem(i.invoice_id, i.number, i.amount_cents) for i in chosen),
        created_at=now,
        locked_until=now + lock_duration,
    )


def locked_message(number: str, locked_until: datetime) -> str:
    return (
        f"Un paiement de la facture {number} est déjà en cours. Tant qu'il peut encore aboutir, la facture "
        f"ne peut pas être réglée à nouveau : réessayez après le {format_datetime(locked_until)} "
        "s'il n'a pas abouti."
    )


# --- attempts and their settlement -------------------------------------------------------------------


@dataclass(frozen=True)
class TimePolicy:
    """The protocol page's time windows and this portal's own (settings give the values)."""

    operation_window: timedelta = timedelta(minutes=15)  # an idOp must reach payment within it
    lock_duration: timedelta = timedelta(hours=2)
    give_up_after: timedelta = timedelta(hours=2)  # P5 past this age: expired
    unreachable_give_up_after: timedelta = timedelta(hours=24)  # PayFiP unreachable past this age
    first_poll_after: timedelta = timedelta(minutes=5)
    poll_spacing: timedelta = timedelta(minutes=5)
    max_poll_spacing: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class Attempt:
    """What a settlement needs to know about an attempt (and what PayFiP was asked)."""

    payment_id: uuid.UUID
    state: PaymentState
    created_at: datetime
    locked_until: datetime
    idop: str | None
    numcli: str
    refdet: str
    amount_cents: int
    polls: int = 0
    provisional_result: str | None = None


ObservationKind = Literal["result", "no_result_yet", "unknown_operation", "unavailable"]


@dataclass(frozen=True)
class ConfirmedResult:
    """PayFiP's detail answer, as values."""

    resultrans: Literal["P", "V", "R", "Z", "A"]
    idop: str | None
    numcli: str | None
    refdet: str | None
    montant: int | None
    numauto: str | None
    transaction_time: datetime | None


@dataclass(frozen=True)
class Observation:
    """What asking PayFiP for the detail gave: a result, P5, P1, or nothing (unreachable, other fault)."""

    kind: ObservationKind
    result: ConfirmedResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class Settlement:
    """What to do with an attempt after an observation. `new_state` None: it stays as it is."""

    new_state: PaymentState | None
    reason: str
    release_lock: bool = False
    locked_until: datetime | None = None
    next_poll_at: datetime | None = None
    provisional_result: str | None = None
    incident: IncidentKind | None = None
    incident_details: dict[str, object] = field(default_factory=dict)
    result: ConfirmedResult | None = None

    @property
    def is_payment(self) -> bool:
        return self.new_state is PaymentState.PAID


def differences(attempt: Attempt, result: ConfirmedResult) -> dict[str, object]:
    """Fields of PayFiP's answer that do not match what was sent for this attempt."""
    found: dict[str, object] = {}
    if (result.numcli or "") != attempt.numcli:
        found["numcli"] = {"expected": attempt.numcli, "received": result.numcli}
    if (result.refdet or "") != attempt.refdet:
        found["refdet"] = {"expected": attempt.refdet, "received": result.refdet}
    if result.montant != attempt.amount_cents:
        found["montant"] = {"expected": attempt.amount_cents, "received": result.montant}
    if result.idop is not None and attempt.idop is not None and result.idop != attempt.idop:
        found["idOp"] = {"expected": attempt.idop, "received": result.idop}
    return found


def next_poll(attempt: Attempt, now: datetime, policy: TimePolicy) -> datetime:
    """Backoff: the spacing doubles with each poll, up to `max_poll_spacing` (about 30 minutes), and never
    jumps past the moments where the answer would change our decision."""
    spacing: timedelta = policy.poll_spacing * (2 ** min(attempt.polls, 16))
    candidate = now + min(spacing, policy.max_poll_spacing)
    for milestone in (
        attempt.created_at + policy.operation_window,
        attempt.created_at + policy.give_up_after,
    ):
        if now < milestone < candidate:
            candidate = milestone
    return candidate


def first_poll(created_at: datetime, policy: TimePolicy) -> datetime:
    return created_at + policy.first_poll_after


def settle(attempt: Attempt, observation: Observation, now: datetime, policy: TimePolicy) -> Settlement:
    """Decide what an observation of PayFiP means for an attempt. Pure; the guarded UPDATE applies it."""
    age = now - attempt.created_at
    result = observation.result

    if attempt.state.is_final:
        if (
            observation.kind == "result"
            and result is not None
            and result.resultrans in ("P", "V")
            and attempt.state in RELEASING_STATES
            and not differences(attempt, result)
        ):
            return Settlement(
                None,
                "paid_after_final",
                incident=IncidentKind.PAID_AFTER_FINAL,
                incident_details={"state": attempt.state.value, "resultrans": result.resultrans},
                result=result,
            )
        return Settlement(None, "already_final")

    if observation.kind == "result" and result is not None:
        mismatch = differences(attempt, result)
        if mismatch:
            return Settlement(
                PaymentState.MISMATCH,
                "mismatch",
                incident=IncidentKind.MISMATCH,
                incident_details={"resultrans": result.resultrans, "differences": mismatch},
                result=result,
            )
        if result.resultrans in ("P", "V"):
            return Settlement(PaymentState.PAID, "paid", release_lock=True, result=result)
        if result.resultrans in ("R", "Z"):
            return Settlement(PaymentState.REFUSED, "refused", release_lock=True, result=result)
        # A: final only once the idOp's 15 minutes are over; before, it might still turn into P.
        window_end = attempt.created_at + policy.operation_window
        if now >= window_end:
            return Settlement(PaymentState.ABANDONED, "abandoned", release_lock=True, result=result)
        return Settlement(
            None,
            "abandoned_not_yet_final",
            locked_until=min(attempt.locked_until, window_end),
            next_poll_at=window_end,
            provisional_result="A",
            result=result,
        )

    if observation.kind == "no_result_yet":
        if age >= policy.give_up_after:
            return Settlement(PaymentState.EXPIRED, "no_result_before_give_up", release_lock=True)
        return Settlement(
            None,
            "no_result_yet",
            next_poll_at=next_poll(attempt, now, policy),
            provisional_result=attempt.provisional_result,
        )

    if observation.kind == "unknown_operation":
        # Purged idOps answer P1: they never reached payment. A young attempt answering P1 is odd (PayFiP
        # created it moments ago): ask again rather than conclude.
        if age >= policy.operation_window:
            return Settlement(PaymentState.EXPIRED, "unknown_operation", release_lock=True)
        return Settlement(None, "unknown_operation_too_young", next_poll_at=next_poll(attempt, now, policy))

    # PayFiP could not be asked: nothing is known. Keep asking, about every 30 minutes at most; the lock
    # still ends at its own time.
    if age >= policy.unreachable_give_up_after:
        return Settlement(PaymentState.EXPIRED, "unverifiable", release_lock=True)
    return Settlement(
        None,
        "unavailable",
        next_poll_at=next_poll(attempt, now, policy),
        provisional_result=attempt.provisional_result,
    )


def stale_creation_cutoff(now: datetime, stale_after: timedelta) -> datetime:
    """Attempts still `created` before this moment never got an idOp (a crash or a lost answer): their
    resident was never sent to PayFiP, so no payment can exist; they fail and release their locks."""
    return now - stale_after
