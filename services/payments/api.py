"""HTTP routes of the payments service: parse, call a handler, answer JSON. Nothing else.

Every route needs the internal token. Resident routes live under `/towns/{town_id}/accounts/{account_id}`
and every query filters on both: another account's payment or idOp answers 404, like a missing one.
`/payfip/notifications` is what the gateway forwards PayFiP's notifications to; `/incidents` is for the
operations team and, later, the office's pages.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.payments import handlers
from services.payments.domain import NON_FINAL_STATES, PaymentItem, PaymentRefused, PaymentState
from services.payments.handlers import PaymentNotFound, PaymentsContext, PaymentStartFailed, StartPayment
from services.payments.invoices_client import InvoicesUnavailable
from services.payments.payfip import PayfipRejected, PayfipUnavailable, is_valid_numcli
from services.payments.repository import PaymentRecord
from shared.plumbing.openapi import ApiRoutes
from shared.plumbing.web import ApiError, json_model, parse_json, parse_query

routes = ApiRoutes(title="Le portail des factures: payments service")
CONTEXT = web.AppKey("payments_context", PaymentsContext)

RESIDENT = "/towns/{town_id}/accounts/{account_id}"
IDOP_PATTERN = r"^[A-Za-z0-9-]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartIn(_Strict):
    invoice_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    email: str = Field(min_length=3, max_length=254, description="Where PayFiP sends its payment ticket.")


class ItemOut(BaseModel):
    invoice_id: uuid.UUID
    number: str
    amount_cents: int


class RegieOut(BaseModel):
    regie_id: uuid.UUID
    code: str
    name: str


class PaymentOut(BaseModel):
    payment_id: uuid.UUID
    idop: str | None
    state: PaymentState
    state_label: str = Field(description="The state in French, as a resident reads it.")
    final: bool
    reference: str = Field(description="The refdet sent to PayFiP (grouping reference for several invoices).")
    grouped: bool
    numcli: str = Field(description="«Identifiant collectivité»: the régie's PayFiP client number.")
    regie: RegieOut
    amount_cents: int
    items: list[ItemOut]
    created_at: datetime
    locked_until: datetime
    lock_active: bool = Field(description="The invoices cannot be paid again before locked_until.")
    started_at: datetime | None
    settled_at: datetime | None
    paid_at: datetime | None
    result_code: str | None = Field(description="PayFiP's resultrans once final: P, V, R, Z or A.")
    provisional_result: str | None = Field(
        description="'A' when the resident abandoned but it is not final yet."
    )
    authorisation_number: str | None

    @classmethod
    def of(cls, record: PaymentRecord, now: datetime) -> PaymentOut:
        lock_holds = record.state in NON_FINAL_STATES or record.state is PaymentState.MISMATCH
        return cls(
            payment_id=record.payment_id,
            idop=record.idop,
            state=record.state,
            state_label=record.state.label,
            final=record.state.is_final,
            reference=record.refdet,
            grouped=record.grouped,
            numcli=record.numcli,
            regie=RegieOut(regie_id=record.regie_id, code=record.regie_code, name=record.regie_name),
            amount_cents=record.amount_cents,
            items=_items(record.items),
            created_at=record.created_at,
            locked_until=record.locked_until,
            lock_active=lock_holds and record.locked_until > now,
            started_at=record.started_at,
            settled_at=record.settled_at,
            paid_at=record.paid_at,
            result_code=record.result_code,
            provisional_result=record.provisional_result,
            authorisation_number=record.authorisation_number,
        )


class StartedPaymentOut(PaymentOut):
    redirect_url: str = Field(description="PayFiP's payment page: send the browser there, same window.")


class PreviewOut(BaseModel):
    numcli: str
    regie: RegieOut
    amount_cents: int
    reference: str | None = Field(
        description="None for several invoices: the grouping reference is made at the start."
    )
    grouped: bool
    items: list[ItemOut]
    lock_hours: float


class PaymentListQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=20, ge=1, le=100)


class PaymentListOut(BaseModel):
    payments: list[PaymentOut]
    page: int
    per_page: int
    total: int


class ReturnedIn(_Strict):
    idop: str = Field(pattern=IDOP_PATTERN)


class LocksIn(_Strict):
    invoice_ids: list[uuid.UUID] = Field(max_length=500)


class LockOut(BaseModel):
    invoice_id: uuid.UUID
    payment_id: uuid.UUID | None = Field(description="Only when the lock is this account's own payment.")
    own: bool
    locked_until: datetime


class LocksOut(BaseModel):
    locks: list[LockOut]


class NotificationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idop: str = Field(pattern=IDOP_PATTERN)


class NotificationOut(BaseModel):
    known: bool
    state: PaymentState | None


class ClientOut(BaseModel):
    numcli: str | None
    libelle_n1: str | None
    libelle_n2: str | None
    libelle_n3: str | None


class IncidentsQuery(BaseModel):
    town_id: uuid.UUID
    limit: int = Field(default=100, ge=1, le=1000)


class IncidentOut(BaseModel):
    incident_id: uuid.UUID
    payment_id: uuid.UUID
    idop: str | None
    kind: str
    details: dict[str, object]
    created_at: datetime


class IncidentsOut(BaseModel):
    incidents: list[IncidentOut]


# --- plumbing of this edge -------------------------------------------------------------------------


def _context(request: web.Request) -> PaymentsContext:
    return request.app[CONTEXT]


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "not_found", "Ressource introuvable.") from None


def _resident(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    return _uuid(request, "town_id"), _uuid(request, "account_id")


@contextlib.contextmanager
def _answers_for_errors() -> Iterator[None]:
    """The one place where what went wrong becomes a status and a French message."""
    try:
        yield
    except PaymentRefused as error:
        raise ApiError(error.status, error.code, error.message, error.details) from None
    except PaymentStartFailed as error:
        raise ApiError(error.status, error.code, error.message) from None
    except InvoicesUnavailable:
        raise ApiError(
            503,
            "invoices_unavailable",
            "Vos factures ne peuvent pas être consultées pour le moment ; aucun paiement n'a été commencé. "
            "Réessayez dans quelques minutes.",
        ) from None
    except PaymentNotFound:
        raise ApiError(404, "payment_not_found", "Paiement introuvable.") from None


def _items(items: Sequence[PaymentItem]) -> list[ItemOut]:
    return [ItemOut(invoice_id=i.invoice_id, number=i.number, amount_cents=i.amount_cents) for i in items]


# --- routes ----------------------------------------------------------------------------------------


@routes.route(
    "POST",
    RESIDENT + "/payments/preview",
    summary="What the payment screen shows (client number, amount, reference); nothing is stored",
    body=StartIn,
    response=PreviewOut,
    errors=(404, 409, 503),
    tags=["residents"],
)
async def post_preview(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    body = await parse_json(request, StartIn)
    ctx = _context(request)
    with _answers_for_errors():
        preview = await handlers.preview_payment(
            StartPayment(town_id, account_id, tuple(body.invoice_ids), body.email), ctx=ctx
        )
    plan = preview.plan
    return json_model(
        PreviewOut(
            numcli=plan.regie.payfip_client_number,
            regie=RegieOut(regie_id=plan.regie.regie_id, code=plan.regie.code, name=plan.regie.name),
            amount_cents=plan.amount_cents,
            reference=None if plan.grouped else plan.reference,
            grouped=plan.grouped,
            items=_items(plan.items),
            lock_hours=ctx.settings.lock_hours,
        )
    )


@routes.route(
    "POST",
    RESIDENT + "/payments",
    summary="Start a payment: amounts from the invoices service, invoices locked, PayFiP operation created",
    body=StartIn,
    response=StartedPaymentOut,
    status=201,
    errors=(404, 409, 502, 503),
    tags=["residents"],
)
async def post_payment(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    body = await parse_json(request, StartIn)
    ctx = _context(request)
    with _answers_for_errors():
        started = await handlers.start_payment(
            StartPayment(town_id, account_id, tuple(body.invoice_ids), body.email), ctx=ctx
        )
    payment = PaymentOut.of(started.payment, ctx.clock())
    return json_model(
        StartedPaymentOut(**payment.model_dump(), redirect_url=started.redirect_url), status=201
    )


@routes.route(
    "GET",
    RESIDENT + "/payments",
    summary="«Mes règlements»: the account's payments, newest first",
    query=PaymentListQuery,
    response=PaymentListOut,
    tags=["residents"],
)
async def get_payments(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    query = parse_query(request, PaymentListQuery)
    ctx = _context(request)
    records, total = await handlers.list_payments(
        town_id, account_id, page=query.page, per_page=query.per_page, ctx=ctx
    )
    now = ctx.clock()
    return json_model(
        PaymentListOut(
            payments=[PaymentOut.of(record, now) for record in records],
            page=query.page,
            per_page=query.per_page,
            total=total,
        )
    )


@routes.route(
    "GET",
    RESIDENT + "/payments/{payment_id}",
    summary="One payment of the account",
    response=PaymentOut,
    errors=(404,),
    tags=["residents"],
)
async def get_payment(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    payment_id = _uuid(request, "payment_id")
    ctx = _context(request)
    with _answers_for_errors():
        record = await handlers.get_payment(town_id, account_id, payment_id, ctx=ctx)
    return json_model(PaymentOut.of(record, ctx.clock()))


@routes.route(
    "POST",
    RESIDENT + "/payments/returned",
    summary="The browser came back from PayFiP: confirm with PayFiP and answer the state",
    body=ReturnedIn,
    response=PaymentOut,
    errors=(404,),
    tags=["residents"],
)
async def post_returned(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    body = await parse_json(request, ReturnedIn)
    ctx = _context(request)
    with _answers_for_errors():
        record = await handlers.browser_returned(town_id, account_id, body.idop, ctx=ctx)
    return json_model(PaymentOut.of(record, ctx.clock()))


@routes.route(
    "POST",
    RESIDENT + "/locks",
    summary="Which of these invoices a payment in progress locks, and until when",
    body=LocksIn,
    response=LocksOut,
    tags=["residents"],
)
async def post_locks(request: web.Request) -> web.Response:
    town_id, account_id = _resident(request)
    body = await parse_json(request, LocksIn)
    locks = await handlers.invoice_locks(town_id, body.invoice_ids, ctx=_context(request))
    return json_model(
        LocksOut(
            locks=[
                LockOut(
                    invoice_id=lock.invoice_id,
                    payment_id=lock.payment_id if lock.account_id == account_id else None,
                    own=lock.account_id == account_id,
                    locked_until=lock.locked_until,
                )
                for lock in locks
            ]
        )
    )


@routes.route(
    "POST",
    "/payfip/notifications",
    summary="PayFiP notified an operation (forwarded by the gateway): ask PayFiP for its detail and settle",
    body=NotificationIn,
    response=NotificationOut,
    tags=["internal"],
)
async def post_notification(request: web.Request) -> web.Response:
    body = await parse_json(request, NotificationIn)
    record = await handlers.confirm_with_payfip(body.idop, trigger="notification", ctx=_context(request))
    return json_model(NotificationOut(known=record is not None, state=record.state if record else None))


@routes.route(
    "GET",
    "/payfip/clients/{numcli}",
    summary="What PayFiP knows of a régie's client number (recupererDetailClient), to check a configuration",
    response=ClientOut,
    errors=(404, 503),
    tags=["internal"],
)
async def get_payfip_client(request: web.Request) -> web.Response:
    numcli = request.match_info["numcli"]
    if not is_valid_numcli(numcli):
        raise ApiError(404, "payfip_client_unknown", "Numéro de client PayFiP invalide (6 chiffres).")
    try:
        detail = await handlers.check_client_number(numcli, ctx=_context(request))
    except PayfipRejected as error:
        raise ApiError(
            404, "payfip_client_unknown", f"PayFiP ne connaît pas ce client ({error.code} : {error.libelle})."
        ) from None
    except PayfipUnavailable:
        raise ApiError(503, "payfip_unavailable", "PayFiP ne répond pas pour le moment.") from None
    return json_model(ClientOut(**detail.__dict__))


@routes.route(
    "GET",
    "/incidents",
    summary="Operations the billing office must look at (mismatches, late or doubtful payments)",
    query=IncidentsQuery,
    response=IncidentsOut,
    tags=["internal"],
)
async def get_incidents(request: web.Request) -> web.Response:
    query = parse_query(request, IncidentsQuery)
    incidents = await handlers.town_incidents(query.town_id, limit=query.limit, ctx=_context(request))
    return json_model(
        IncidentsOut(
            incidents=[
                IncidentOut(
                    incident_id=i.incident_id,
                    payment_id=i.payment_id,
                    idop=i.idop,
                    kind=i.kind,
                    details=i.details,
                    created_at=i.created_at,
                )
                for i in incidents
            ]
        )
    )
