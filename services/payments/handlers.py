"""Use cases of the payments service: start a payment, confirm it with PayFiP, reconcile, keep projections.

One function settles attempts, whoever asks: `confirm_with_payfip(idop, trigger=…)` is called by a
notification, by the resident's browser coming back and by the reconciler. It asks PayFiP for the detail
(never inside a database transaction), then, under the attempt's row lock, lets the domain decide and
applies the decision with a guarded UPDATE; the success event goes to the outbox in that same transaction,
so concurrent notifications, returns and reconcilers produce one transition and one event.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from services.payments import domain
from services.payments.domain import (
    IncidentKind,
    InvoiceClosed,
    InvoiceLocked,
    Observation,
    PaymentPlan,
    PaymentState,
    Settlement,
    TimePolicy,
)
from services.payments.invoices_client import InvoicesClient
from services.payments.metrics import PaymentsMetrics
from services.payments.payfip import (
    CallRecord,
    CallRecorder,
    ClientDetail,
    PayfipClient,
    PayfipError,
    PayfipRejected,
    PayfipResultUnknown,
    PayfipUnavailable,
    PayfipUnknownOperation,
    PaymentRequest,
    clean_objet,
)
from services.payments.repository import (
    CallLog,
    Incident,
    InvoiceLock,
    PaymentRecord,
    PaymentsUnitOfWork,
)
from services.payments.settings import Settings
from shared.contracts import Envelope, events
from shared.plumbing.logging import get_logger

log = get_logger(__name__)

Trigger = Literal["notification", "return", "reconciler", "start", "check"]
# States in which asking PayFiP again can change nothing we would act on.
_SETTLED_FOR_GOOD = frozenset(
    {
        PaymentState.PAID,
        PaymentState.REFUSED,
        PaymentState.MISMATCH,
        PaymentState.CREATED,
        PaymentState.FAILED_TO_START,
    }
)
_CLOSURE_WORDS = {
    "declared": "a été déclarée réglée par un autre moyen",
    "paid_online": "est déjà réglée",
    "paid_elsewhere": "est déjà réglée",
    "cancelled": "a été annulée",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PaymentsContext:
    """What the use cases talk to; built once per process in app.py."""

    pool: asyncpg.Pool
    payfip: PayfipClient
    invoices: InvoicesClient
    settings: Settings
    policy: TimePolicy
    metrics: PaymentsMetrics | None = None
    clock: Callable[[], datetime] = utc_now

    def uow(self) -> PaymentsUnitOfWork:
        return PaymentsUnitOfWork(self.pool, producer="payments")


# --- errors the HTTP edge turns into answers --------------------------------------------------------


class PaymentStartFailed(Exception):
    """PayFiP refused to create the operation or could not be reached: the attempt failed, its locks are
    released, nothing was paid."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PaymentNotFound(Exception):
    pass


# --- starting a payment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPayment:
    town_id: uuid.UUID
    account_id: uuid.UUID
    invoice_ids: tuple[uuid.UUID, ...]
    email: str


@dataclass(frozen=True)
class StartedPayment:
    payment: PaymentRecord
    redirect_url: str


@dataclass(frozen=True)
class PaymentPreview:
    plan: PaymentPlan


async def _plan(
    cmd: StartPayment, ctx: PaymentsContext, payment_id: uuid.UUID
) -> tuple[PaymentPlan, str | None]:
    answer = await ctx.invoices.payable(cmd.town_id, cmd.account_id, cmd.invoice_ids)
    plan = domain.plan_payment(
        cmd.invoice_ids,
        answer.invoices,
        town_id=cmd.town_id,
        account_id=cmd.account_id,
        email=cmd.email,
        payment_id=payment_id,
        now=ctx.clock(),
        lock_duration=ctx.policy.lock_duration,
    )
    public_url = answer.town.public_url if answer.town is not None else None
    return plan, public_url


async def _refuse_closed_or_locked(uow: PaymentsUnitOfWork, plan: PaymentPlan) -> None:
    """Raise when an invoice is closed (as the events told us) or locked by an attempt that may succeed."""
    invoice_ids = [item.invoice_id for item in plan.items]
    closed = await uow.closures.closed_among(plan.town_id, invoice_ids)
    if closed:
        numbers = {item.invoice_id: item.number for item in plan.items}
        first = closed[0]
        raise InvoiceClosed(
            f"La facture {numbers[first.invoice_id]} {_CLOSURE_WORDS.get(first.status, 'est close')}.",
            [{"invoice_id": str(c.invoice_id), "reason": c.status} for c in closed],
        )
    locks = await uow.attempts.active_locks(plan.town_id, invoice_ids, plan.created_at)
    if locks:
        raise _locked(locks)


def _locked(locks: Sequence[InvoiceLock]) -> InvoiceLocked:
    if not locks:  # the lock that beat us already ended: a rare race, the resident simply retries
        return InvoiceLocked(
            "Un paiement de cette facture vient d'être commencé ; réessayez dans un instant."
        )
    last = max(locks, key=lambda lock: lock.locked_until)
    return InvoiceLocked(
        domain.locked_message(last.number, last.locked_until),
        [
            {
                "invoice_id": str(lock.invoice_id),
                "number": lock.number,
                "locked_until": lock.locked_until.isoformat(),
            }
            for lock in locks
        ],
    )


async def preview_payment(cmd: StartPayment, *, ctx: PaymentsContext) -> PaymentPreview:
    """What the payment screen shows before the resident leaves for PayFiP; nothing is stored or locked.
    Refuses exactly as a start would at this moment."""
    plan, _ = await _plan(cmd, ctx, uuid.uuid4())
    async with ctx.uow() as uow:
        await _refuse_closed_or_locked(uow, plan)
    return PaymentPreview(plan)


async def start_payment(cmd: StartPayment, *, ctx: PaymentsContext) -> StartedPayment:
    """Store the attempt and lock its invoices (one transaction), then create the PayFiP operation."""
    payment_id = uuid.uuid4()
    plan, public_url = await _plan(cmd, ctx, payment_id)
    async with ctx.uow() as uow:
        if public_url is None:
            town = await uow.towns.get(cmd.town_id)
            public_url = town.public_url if town is not None else None
        if public_url is None:
            raise PaymentStartFailed(
                503, "town_unknown", "La commune n'est pas encore configurée pour le paiement en ligne."
            )
        await _refuse_closed_or_locked(uow, plan)
        await uow.attempts.insert(plan)
        taken = await uow.attempts.take_locks(plan)
        if len(taken) < len(plan.items):
            # Another start took a lock between our check and our insert: it wins, this one rolls back.
            raise _locked(
                await uow.attempts.active_locks(
                    plan.town_id, [i.invoice_id for i in plan.items], plan.created_at
                )
            )
    log.info(
        "payment_created",
        payment_id=str(payment_id),
        town_id=str(plan.town_id),
        invoices=len(plan.items),
        amount_cents=plan.amount_cents,
        grouped=plan.grouped,
    )

    request = PaymentRequest(
        exer=plan.exer,
        mel=plan.email,
        montant=plan.amount_cents,
        numcli=plan.regie.payfip_client_number,
        objet=clean_objet(plan.label),
        refdet=plan.reference,
        saisie=plan.regie.payfip_mode,
        urlnotif=ctx.settings.notification_url,
        urlredirect=public_url.rstrip("/") + "/reglement/retour",
    )
    try:
        idop = await ctx.payfip.create_payment(request, record=_recorder(ctx, payment_id, None, "start"))
    except PayfipError as error:  # InvalidPayfipField included: nothing was sent
        await _fail_start(ctx, payment_id, error)
        raise _start_failure(error) from None

    now = ctx.clock()
    async with ctx.uow() as uow:
        started = await uow.attempts.mark_started(
            payment_id,
            idop,
            sent={
                "numcli": request.numcli,
                "refdet": request.refdet,
                "montant": request.montant,
                "exer": request.exer,
                "saisie": request.saisie,
                "objet": request.objet,
                "urlnotif": request.urlnotif,
                "urlredirect": request.urlredirect,
            },
            started_at=now,
            first_poll_at=domain.first_poll(plan.created_at, ctx.policy),
        )
        record = await uow.attempts.by_idop(idop) if started else None
    if record is None:
        log.error("payment_start_too_late", payment_id=str(payment_id), idop=idop)
        raise PaymentStartFailed(
            503,
            "payment_start_interrupted",
            "Le paiement n'a pas pu être préparé à temps. Aucun paiement n'a été effectué : réessayez.",
        )
    log.info("payment_started", payment_id=str(payment_id), idop=idop)
    return StartedPayment(record, ctx.payfip.payment_page_url(idop))


async def _fail_start(ctx: PaymentsContext, payment_id: uuid.UUID, error: Exception) -> None:
    code = error.code if isinstance(error, PayfipRejected) else type(error).__name__
    async with ctx.uow() as uow:
        await uow.attempts.mark_failed_to_start(payment_id, code=code, error=str(error), now=ctx.clock())
    log.warning("payment_start_failed", payment_id=str(payment_id), code=code, error=str(error))


def _start_failure(error: Exception) -> PaymentStartFailed:
    if isinstance(error, PayfipRejected):
        return PaymentStartFailed(
            502,
            "payfip_rejected",
            f"PayFiP a refusé de préparer ce paiement ({error.code} : {error.libelle}). Aucun paiement n'a "
            "été effectué. Si le problème persiste, contactez le service de facturation.",
        )
    if isinstance(error, PayfipUnavailable):
        return PaymentStartFailed(
            503,
            "payfip_unavailable",
            "Le service de paiement PayFiP ne répond pas pour le moment. Aucun paiement n'a été effectué et "
            "la facture reste payable : réessayez dans quelques minutes.",
        )
    return PaymentStartFailed(
        502,
        "payfip_request_invalid",
        "Ce paiement ne peut pas être transmis à PayFiP. Aucun paiement n'a été effectué ; contactez le "
        "service de facturation.",
    )


# --- confirming with PayFiP ------------------------------------------------------------------------


def _recorder(
    ctx: PaymentsContext, payment_id: uuid.UUID | None, idop: str | None, trigger: Trigger
) -> CallRecorder:
    async def record(call: CallRecord) -> None:
        try:
            async with ctx.pool.acquire() as conn:
                await CallLog(conn).add(
                    operation=call.operation,
                    payment_id=payment_id,
                    idop=idop,
                    trigger=trigger,
                    outcome=call.outcome,
                    code=call.code,
                    http_status=call.http_status,
                    called_at=call.started_at,
                    duration_ms=call.duration_ms,
                    error=call.error,
                )
        except Exception as error:  # the log of calls must never stop a payment
            log.warning("payfip_call_not_logged", error=repr(error))
        if ctx.metrics is not None:
            ctx.metrics.observe_call(call.operation, call.outcome, call.error, call.duration_ms)
        log.info(
            "payfip_called",
            operation=call.operation,
            payment_id=str(payment_id) if payment_id else None,
            idop=idop,
            trigger=trigger,
            outcome=call.outcome,
            code=call.code,
            http_status=call.http_status,
            duration_ms=call.duration_ms,
        )

    return record


async def _observe(ctx: PaymentsContext, record: PaymentRecord, idop: str, trigger: Trigger) -> Observation:
    try:
        detail = await ctx.payfip.payment_detail(
            idop, record=_recorder(ctx, record.payment_id, idop, trigger)
        )
    except PayfipResultUnknown:
        return Observation("no_result_yet")
    except PayfipUnknownOperation:
        return Observation("unknown_operation")
    except PayfipRejected as error:
        # Another functional fault on a detail call tells nothing about the payment: ask again later.
        return Observation("unavailable", error=f"{error.code} {error.libelle}")
    except PayfipUnavailable as error:
        return Observation("unavailable", error=error.reason)
    return Observation(
        "result",
        domain.ConfirmedResult(
            resultrans=detail.resultrans,
            idop=detail.idop,
            numcli=detail.numcli,
            refdet=detail.refdet,
            montant=detail.montant,
            numauto=detail.numauto,
            transaction_time=detail.transaction_time,
        ),
    )


async def confirm_with_payfip(idop: str, *, trigger: Trigger, ctx: PaymentsContext) -> PaymentRecord | None:
    """Ask PayFiP for the detail of `idop` and settle its attempt; None when no attempt has this idOp."""
    async with ctx.uow() as uow:
        record = await uow.attempts.by_idop(idop)
    if record is None:
        log.warning("payfip_idop_unknown", idop=idop[:64], trigger=trigger)
        return None
    if record.state in _SETTLED_FOR_GOOD:
        log.info(
            "payment_already_settled",
            payment_id=str(record.payment_id),
            state=record.state.value,
            trigger=trigger,
        )
        return record

    observation = await _observe(ctx, record, idop, trigger)
    now = ctx.clock()
    async with ctx.uow() as uow:
        current = await uow.attempts.by_idop(idop, for_update=True)
        assert current is not None  # attempts are never deleted
        decision = domain.settle(current.attempt(), observation, now, ctx.policy)
        applied = await _apply(uow, current, decision, observation, now=now, trigger=trigger)
        after = await uow.attempts.by_idop(idop)
    # Told only once the transaction committed.
    _report(applied, current, decision, trigger, ctx.metrics)
    return after


@dataclass(frozen=True)
class _Applied:
    settled: PaymentState | None  # the final state reached now, if any
    incidents: tuple[tuple[IncidentKind, dict[str, object]], ...]  # flagged now, with their details


async def _apply(
    uow: PaymentsUnitOfWork,
    record: PaymentRecord,
    decision: Settlement,
    observation: Observation,
    *,
    now: datetime,
    trigger: Trigger,
) -> _Applied:
    count_poll = trigger == "reconciler"
    incidents: list[tuple[IncidentKind, dict[str, object]]] = []

    async def flag(kind: IncidentKind, details: dict[str, object]) -> None:
        if await uow.incidents.add(
            town_id=record.town_id,
            payment_id=record.payment_id,
            idop=record.idop,
            kind=kind,
            details=details,
            now=now,
        ):
            incidents.append((kind, details))

    if decision.new_state is None:
        if decision.incident is not None:
            await flag(decision.incident, decision.incident_details)
        if not record.state.is_final:
            await uow.attempts.keep_pending(
                record.payment_id,
                next_poll_at=decision.next_poll_at,
                provisional_result=decision.provisional_result,
                locked_until=decision.locked_until,
                count_poll=count_poll,
                error=observation.error,
            )
        return _Applied(None, tuple(incidents))

    state = decision.new_state
    result = decision.result
    if not await uow.attempts.finalize(
        record.payment_id, state, result=result, now=now, trigger=trigger, count_poll=count_poll
    ):
        # Another path settled it first (cannot happen under the row lock, but the guard decides).
        return _Applied(None, ())
    if decision.release_lock:
        await uow.attempts.release_locks(record.payment_id)
    if decision.incident is not None:
        await flag(decision.incident, decision.incident_details)
    if state is PaymentState.PAID and result is not None:
        closed = await _record_success(uow, record, result, now=now)
        if closed:
            await flag(IncidentKind.PAID_CLOSED_INVOICE, {"invoices": closed})
    return _Applied(state, tuple(incidents))


def _report(
    applied: _Applied,
    record: PaymentRecord,
    decision: Settlement,
    trigger: Trigger,
    metrics: PaymentsMetrics | None,
) -> None:
    payment_id = str(record.payment_id)
    if applied.settled is not None:
        log.info(
            "payment_settled",
            payment_id=payment_id,
            idop=record.idop,
            state=applied.settled.value,
            result=decision.result.resultrans if decision.result else None,
            reason=decision.reason,
            trigger=trigger,
        )
    elif not record.state.is_final:
        log.info(
            "payment_still_pending",
            payment_id=payment_id,
            reason=decision.reason,
            trigger=trigger,
            next_poll_at=decision.next_poll_at.isoformat() if decision.next_poll_at else None,
        )
    for kind, details in applied.incidents:
        log.error(
            _INCIDENT_LOG_EVENTS[kind],
            payment_id=payment_id,
            idop=record.idop,
            state=record.state.value,
            details=details,
        )
    if metrics is not None:
        if applied.settled is not None:
            metrics.payments_settled.labels(applied.settled.value, trigger).inc()
        for kind, _ in applied.incidents:
            metrics.incidents.labels(kind.value).inc()


_INCIDENT_LOG_EVENTS = {
    IncidentKind.MISMATCH: "payment_mismatch_flagged",
    IncidentKind.PAID_AFTER_FINAL: "payment_paid_after_final_flagged",
    IncidentKind.PAID_CLOSED_INVOICE: "payment_paid_closed_invoice_flagged",
}


async def _record_success(
    uow: PaymentsUnitOfWork, record: PaymentRecord, result: domain.ConfirmedResult, *, now: datetime
) -> list[dict[str, str]]:
    """Close the invoices and publish the success (same transaction as the transition); answer the
    invoices that had been closed meanwhile (cancelled, declared, paid elsewhere): the office must know."""
    invoice_ids = [item.invoice_id for item in record.items]
    closed = [
        {"invoice_id": str(closure.invoice_id), "status": closure.status}
        for closure in await uow.closures.closed_among(record.town_id, invoice_ids)
        if not (closure.status == "paid_online" and closure.payment_id == record.payment_id)
    ]
    for invoice_id in invoice_ids:
        await uow.closures.record(invoice_id, record.town_id, "paid_online", now, record.payment_id)
    await uow.publish(
        events.PaymentSucceeded(
            town_id=record.town_id,
            payment_id=record.payment_id,
            account_id=record.account_id,
            email=record.email,
            regie_id=record.regie_id,
            reference=record.refdet,
            amount_cents=record.amount_cents,
            items=[
                events.PaidItem(
                    invoice_id=item.invoice_id, number=item.number, amount_cents=item.amount_cents
                )
                for item in record.items
            ],
            authorisation_number=result.numauto,
            result_code="V" if result.resultrans == "V" else "P",
            paid_at=result.transaction_time or now,
        )
    )
    return closed


async def browser_returned(
    town_id: uuid.UUID, account_id: uuid.UUID, idop: str, *, ctx: PaymentsContext
) -> PaymentRecord:
    """The resident came back from PayFiP: confirm with PayFiP (never trust the browser) and answer what
    the portal now knows. Another account's idOp is not found."""
    async with ctx.uow() as uow:
        if not await uow.attempts.idop_belongs_to(idop, town_id, account_id):
            raise PaymentNotFound(idop)
    record = await confirm_with_payfip(idop, trigger="return", ctx=ctx)
    if record is None:
        raise PaymentNotFound(idop)
    return record


# --- the reconciler (P3) ---------------------------------------------------------------------------


async def reconcile_once(*, ctx: PaymentsContext) -> int:
    """One pass: fail attempts stuck before PayFiP, then poll the due ones this replica could claim."""
    settings = ctx.settings
    now = ctx.clock()
    async with ctx.uow() as uow:
        failed = await uow.attempts.fail_stale_creations(
            domain.stale_creation_cutoff(now, timedelta(seconds=settings.stale_creation_seconds)), now
        )
    if failed:
        log.warning("stale_creations_failed", payments=[str(p) for p in failed])
    async with ctx.uow() as uow:
        idops = await uow.attempts.claim_due(
            now,
            limit=settings.reconcile_batch_size,
            claim_until=now + timedelta(seconds=settings.reconcile_claim_seconds),
        )
    if not idops:
        return 0
    log.info("reconciler_claimed", count=len(idops))
    gate = asyncio.Semaphore(settings.reconcile_concurrency)

    async def poll(idop: str) -> None:
        async with gate:
            try:
                await confirm_with_payfip(idop, trigger="reconciler", ctx=ctx)
            except Exception:
                # Its claim runs out and another pass (here or on a replica) tries again.
                log.exception("reconcile_failed", idop=idop)

    await asyncio.gather(*(poll(idop) for idop in idops))
    return len(idops)


async def run_reconciler(ctx: PaymentsContext) -> None:
    """Until cancelled: a pass every `reconcile_interval_seconds`; survives database and PayFiP outages."""
    while True:
        try:
            await reconcile_once(ctx=ctx)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciler_pass_failed")
        await asyncio.sleep(ctx.settings.reconcile_interval_seconds)


# --- reading ---------------------------------------------------------------------------------------


async def list_payments(
    town_id: uuid.UUID, account_id: uuid.UUID, *, page: int, per_page: int, ctx: PaymentsContext
) -> tuple[list[PaymentRecord], int]:
    async with ctx.uow() as uow:
        return await uow.attempts.list_for_account(
            town_id, account_id, limit=per_page, offset=(page - 1) * per_page
        )


async def get_payment(
    town_id: uuid.UUID, account_id: uuid.UUID, payment_id: uuid.UUID, *, ctx: PaymentsContext
) -> PaymentRecord:
    async with ctx.uow() as uow:
        record = await uow.attempts.get(town_id, account_id, payment_id)
    if record is None:
        raise PaymentNotFound(str(payment_id))
    return record


async def invoice_locks(
    town_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID], *, ctx: PaymentsContext
) -> list[InvoiceLock]:
    async with ctx.uow() as uow:
        return await uow.attempts.active_locks(town_id, invoice_ids, ctx.clock())


async def check_client_number(numcli: str, *, ctx: PaymentsContext) -> ClientDetail:
    """What PayFiP knows of a régie's client number (recupererDetailClient): to check a configuration."""
    return await ctx.payfip.client_detail(numcli, record=_recorder(ctx, None, None, "check"))


async def town_incidents(town_id: uuid.UUID, *, limit: int, ctx: PaymentsContext) -> list[Incident]:
    async with ctx.uow() as uow:
        return await uow.incidents.for_town(town_id, limit=limit)


# --- reacting to the invoices service's events ------------------------------------------------------


async def record_town(event: events.TownConfigured, envelope: Envelope, uow: PaymentsUnitOfWork) -> None:
    await uow.towns.save(
        event.town_id,
        event.name,
        event.public_url,
        [regie.model_dump(mode="json") for regie in event.regies],
        envelope.occurred_at,
    )


async def record_invoice_cancelled(
    event: events.InvoiceCancelled, envelope: Envelope, uow: PaymentsUnitOfWork
) -> None:
    await uow.closures.record(event.invoice_id, event.town_id, "cancelled", envelope.occurred_at)


async def record_invoice_settled(
    event: events.InvoiceSettled, envelope: Envelope, uow: PaymentsUnitOfWork
) -> None:
    await uow.closures.record(
        event.invoice_id, event.town_id, event.settlement, envelope.occurred_at, event.payment_id
    )


async def record_payment_declared(
    event: events.PaymentDeclared, envelope: Envelope, uow: PaymentsUnitOfWork
) -> None:
    await uow.closures.record(event.invoice_id, event.town_id, "declared", envelope.occurred_at)


async def record_declaration_answered(
    event: events.DeclarationAnswered, envelope: Envelope, uow: PaymentsUnitOfWork
) -> None:
    """A rejected declaration makes the invoice payable again; an accepted one closes it for good."""
    status = "paid_elsewhere" if event.accepted else "open"
    await uow.closures.record(event.invoice_id, event.town_id, status, envelope.occurred_at)
