"""Paying invoices through PayFiP (R8, R9, R10, R12): the payment screen, the selection of several
invoices, the return from PayFiP and «Mes règlements».

The gateway holds no business data. What an invoice costs and whether it can be paid come from the
payments service, which asks the invoices service at the moment of payment: the browser only ever sends
invoice ids, and the amounts the selection page adds up are informative. The resident leaves for PayFiP
in the same window (the form is answered with a 303 to PayFiP's page: no pop-up, no JavaScript) and comes
back to `/reglement/retour`, which shows what the payments service confirmed with PayFiP, never what the
browser's address claims.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web

from gateway.clients import SERVICES, Regie
from gateway.rendering import SETTINGS, render
from gateway.security import TOWN
from gateway.sessions import Account, current_account, login_required
from shared.plumbing.http_client import ServiceError, ServiceUnavailable
from shared.plumbing.logging import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Only an id can follow /reglement/, so /reglement/selection and /reglement/retour never reach these routes.
INVOICE_SEGMENT = "{invoice_id:" + _UUID + "}"
_UUID_VALUE = re.compile(f"^{_UUID}$")
_IDOP = re.compile(r"^[A-Za-z0-9-]{1,64}$")

SELECTION_PATH = "/reglement/selection"
RETURN_PATH = "/reglement/retour"
INVOICES_PATH = "/factures"
# What one PayFiP operation may cover (the payments service refuses more).
MAX_SELECTED = 50
PAYMENTS_PER_PAGE = 20
# The invoices service pages by 50: past this many pages the selection shows the newest 1 000 invoices.
MAX_INVOICE_PAGES = 20

NOT_STARTED_FALLBACK = (
    "Le service de paiement n'a pas répondu à temps. Vous n'avez pas été dirigé vers PayFiP : aucun paiement "
    "n'a été effectué. Réessayez dans quelques minutes ; si la facture est alors indiquée « paiement en "
    "cours », attendez l'heure indiquée ou consultez « Mes règlements »."
)


# --- what the pages show, read from the services' JSON -----------------------------------------------


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Item:
    invoice_id: str
    number: str
    amount_cents: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Item:
        return cls(str(data["invoice_id"]), str(data["number"]), int(data["amount_cents"]))


Outcome = Literal[
    "paid", "refused", "abandoned", "abandoning", "expired", "mismatch", "not_started", "pending"
]


@dataclass(frozen=True)
class PaymentView:
    """A payment as the payments service describes it (docs/payments.md, *Payment*)."""

    payment_id: str
    idop: str | None
    state: str
    state_label: str
    final: bool
    reference: str
    grouped: bool
    numcli: str
    regie_name: str
    amount_cents: int
    items: tuple[Item, ...]
    created_at: datetime
    started_at: datetime | None
    paid_at: datetime | None
    locked_until: datetime
    lock_active: bool
    result_code: str | None
    provisional_result: str | None
    authorisation_number: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PaymentView:
        return cls(
            payment_id=str(data["payment_id"]),
            idop=data.get("idop"),
            state=str(data["state"]),
            state_label=str(data["state_label"]),
            final=bool(data["final"]),
            reference=str(data["reference"]),
            grouped=bool(data["grouped"]),
            numcli=str(data["numcli"]),
            regie_name=str(data["regie"]["name"]),
            amount_cents=int(data["amount_cents"]),
            items=tuple(Item.from_json(i) for i in data["items"]),
            created_at=datetime.fromisoformat(str(data["created_at"])),
            started_at=_datetime(data.get("started_at")),
            paid_at=_datetime(data.get("paid_at")),
            locked_until=datetime.fromisoformat(str(data["locked_until"])),
            lock_active=bool(data["lock_active"]),
            result_code=data.get("result_code"),
            provisional_result=data.get("provisional_result"),
            authorisation_number=data.get("authorisation_number"),
        )

    @property
    def outcome(self) -> Outcome:
        return outcome_of(self.state, self.provisional_result)

    @property
    def shown_at(self) -> datetime:
        """The date «Mes règlements» gives: when it was paid, else when the resident left for PayFiP."""
        return self.paid_at or self.started_at or self.created_at

    @property
    def retry_path(self) -> str:
        """Where to pay the same invoices again."""
        return pay_again_path([item.invoice_id for item in self.items])


_FINAL_OUTCOMES: dict[str, Outcome] = {
    "paid": "paid",
    "refused": "refused",
    "abandoned": "abandoned",
    "expired": "expired",
    "mismatch": "mismatch",
    "failed_to_start": "not_started",
}


def outcome_of(state: str, provisional_result: str | None) -> Outcome:
    """Which of the return page's messages a payment's state calls for. An abandon PayFiP may still turn
    into a payment for a few minutes (`provisional_result` A) is said as such, not as a final abandon."""
    if state in _FINAL_OUTCOMES:
        return _FINAL_OUTCOMES[state]
    return "abandoning" if provisional_result == "A" else "pending"


def pay_again_path(invoice_ids: Sequence[str]) -> str:
    if len(invoice_ids) == 1:
        return f"/reglement/{invoice_ids[0]}"
    return selection_path(invoice_ids)


def selection_path(invoice_ids: Iterable[str], anchor: str = "") -> str:
    query = urlencode([("facture", invoice_id) for invoice_id in invoice_ids])
    return SELECTION_PATH + (f"?{query}" if query else "") + anchor


def return_path(idop: str) -> str:
    return f"{RETURN_PATH}?{urlencode({'idop': idop})}"


@dataclass(frozen=True)
class Refusal:
    """Why a payment did not start, in the payments service's French words: a rule refused it (409, 422)
    or something failed on the way to PayFiP (502, 503). When the reason is the resident's own payment
    still in progress, that payment (to check where it stands)."""

    code: str
    message: str
    status: int = 409
    own_payment: PaymentView | None = None

    @property
    def failed(self) -> bool:
        return self.status >= 500


def duration_fr(hours: float) -> str:
    """2.0 → «2 heures», 0.5 → «30 minutes»: how long the lock lasts at most."""
    if hours >= 1 and float(hours).is_integer():
        whole = int(hours)
        return f"{whole} heure" + ("s" if whole > 1 else "")
    minutes = max(1, round(hours * 60))
    return f"{minutes} minute" + ("s" if minutes > 1 else "")


def selected_ids(values: Iterable[object]) -> list[str]:
    """The invoice ids a form or an address carries: well-formed ones only, each once, in order."""
    found: dict[str, None] = {}
    for value in values:
        if isinstance(value, str) and _UUID_VALUE.match(value.strip()):
            found[value.strip().lower()] = None
    return list(found)


# --- calling the services ----------------------------------------------------------------------------


def _account(request: web.Request) -> Account:
    account = current_account(request)
    assert account is not None  # the routes are @login_required
    return account


def _resident(request: web.Request) -> str:
    account = _account(request)
    return f"/towns/{account.town_id}/accounts/{account.account_id}"


def _payment_timeout(request: web.Request) -> float:
    return request.app[SETTINGS].payment_timeout_seconds


async def _refusal(request: web.Request, error: ServiceError, invoice_ids: Sequence[str]) -> Refusal:
    """A refusal to show; for a lock, whether it is the resident's own payment in progress."""
    own: PaymentView | None = None
    if error.code == "invoice_locked":
        own = await _own_payment_in_progress(request, invoice_ids)
    status = error.status if error.status in (409, 422) else 409
    return Refusal(error.code, error.message or "Ce paiement ne peut pas commencer.", status, own)


async def _own_payment_in_progress(request: web.Request, invoice_ids: Sequence[str]) -> PaymentView | None:
    payments = request.app[SERVICES].payments
    try:
        found = await payments.post(_resident(request) + "/locks", {"invoice_ids": list(invoice_ids)})
        own = next((lock for lock in found["locks"] if lock["own"] and lock["payment_id"]), None)
        if own is None:
            return None
        return PaymentView.from_json(
            await payments.get(_resident(request) + f"/payments/{own['payment_id']}")
        )
    except (ServiceError, ServiceUnavailable):
        return None  # only a convenience link: the refusal's message already says until when


async def _invoice(request: web.Request, invoice_id: str) -> dict[str, Any]:
    try:
        page: dict[str, Any] = await request.app[SERVICES].invoices.get(
            _resident(request) + f"/invoices/{invoice_id}"
        )
    except ServiceError as error:
        if error.status == 404:
            raise web.HTTPNotFound() from None
        raise
    invoice: dict[str, Any] = page["invoice"]
    return invoice


async def _start(request: web.Request, invoice_ids: list[str]) -> str | Refusal:
    """Start the payment: PayFiP's page to send the browser to, or why it did not start. Nothing but
    invoice ids and the account's address is sent: amounts come from the invoices service."""
    account = _account(request)
    try:
        started = await request.app[SERVICES].payments.post(
            _resident(request) + "/payments",
            {"invoice_ids": invoice_ids, "email": account.email},
            timeout_seconds=_payment_timeout(request),
        )
    except ServiceError as error:
        if error.status == 404:
            raise web.HTTPNotFound() from None
        log.info("payment_not_started", code=error.code, invoices=len(invoice_ids))
        return await _refusal(request, error, invoice_ids)
    except ServiceUnavailable as error:
        # payfip_rejected, payfip_unavailable, invoices_unavailable: the service says what happened and
        # that nothing was paid; a timeout or a refused connection says nothing, so the page does.
        log.warning("payment_start_failed", code=error.code, reason=error.reason, invoices=len(invoice_ids))
        return Refusal(
            error.code or "payments_unavailable",
            error.message or NOT_STARTED_FALLBACK,
            502 if error.status == 502 else 503,
        )
    location = str(started["redirect_url"])
    payfip = request.app[SETTINGS].payfip_origin.rstrip("/")
    if not location.startswith(payfip + "/"):
        # The browser will refuse to follow it (the CSP's form-action names PayFiP's origin only): a
        # configuration error between PAYMENTS_PAYFIP_PAGE_URL and GATEWAY_PAYFIP_ORIGIN.
        log.error("payfip_page_outside_csp", payfip_origin=payfip, payment_id=started.get("payment_id"))
    log.info("payment_redirected", payment_id=started.get("payment_id"), invoices=len(invoice_ids))
    return location


def _not_started(request: web.Request, refusal: Refusal, retry_path: str) -> web.Response:
    return render(
        request,
        "payments/not_started.html",
        {"refusal": refusal, "retry_path": retry_path},
        status=refusal.status,
    )


# --- R8: one invoice ---------------------------------------------------------------------------------


@routes.get(f"/reglement/{INVOICE_SEGMENT}")
@login_required
async def payment_screen(request: web.Request) -> web.StreamResponse:
    """«Paiement en ligne»: what PayFiP will be asked to take, or why it cannot; nothing is locked."""
    invoice_id = request.match_info["invoice_id"].lower()
    invoice = await _invoice(request, invoice_id)
    preview: dict[str, Any] | None = None
    refusal: Refusal | None = None
    try:
        preview = await request.app[SERVICES].payments.post(
            _resident(request) + "/payments/preview",
            {"invoice_ids": [invoice_id], "email": _account(request).email},
        )
    except ServiceError as error:
        if error.status == 404:
            raise web.HTTPNotFound() from None
        refusal = await _refusal(request, error, [invoice_id])
    regie = _regie(request, str(invoice["regie"]["code"]))
    return render(
        request,
        "payments/screen.html",
        {
            "invoice": invoice,
            "invoice_id": invoice_id,
            "issued_on": _date(invoice.get("issued_on")),
            "preview": preview,
            "items": [Item.from_json(i) for i in preview["items"]] if preview else [],
            "lock_duration": duration_fr(float(preview["lock_hours"])) if preview else "",
            "refusal": refusal,
            "grouped_allowed": regie is not None and regie.grouped_payment_allowed,
            "selection_path": selection_path([invoice_id]),
        },
    )


@routes.post(f"/reglement/{INVOICE_SEGMENT}")
@login_required
async def pay_one(request: web.Request) -> web.StreamResponse:
    invoice_id = request.match_info["invoice_id"].lower()
    started = await _start(request, [invoice_id])
    if isinstance(started, Refusal):
        return _not_started(request, started, f"/reglement/{invoice_id}")
    raise web.HTTPSeeOther(started)


# --- R9: several invoices of one régie ---------------------------------------------------------------


@dataclass(frozen=True)
class SelectionRow:
    invoice_id: str
    number: str
    issued_on: date | None
    object: str
    amount_cents: int
    regie_code: str
    selected: bool
    locked_until: datetime | None  # a payment in progress: cannot be chosen before then


@dataclass
class SelectionGroup:
    code: str
    name: str
    rows: list[SelectionRow] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    groups: list[SelectionGroup]
    count: int
    total_cents: int
    several_regies: bool
    # Régies whose unpaid invoices are paid one by one (the town does not allow grouped payment there).
    one_by_one: list[str]
    truncated: bool


def _regie(request: web.Request, code: str) -> Regie | None:
    return next((r for r in request[TOWN].regies if r.code == code), None)


async def _unpaid_invoices(request: web.Request) -> tuple[list[dict[str, Any]], bool]:
    """The resident's unpaid invoices, every page of them (up to a bound); and whether it was reached."""
    invoices = request.app[SERVICES].invoices
    found: list[dict[str, Any]] = []
    for number in range(1, MAX_INVOICE_PAGES + 1):
        page = await invoices.get(_resident(request) + "/invoices", params={"page": str(number)})
        found += [line for line in page["invoices"] if line["state"] == "unpaid"]
        if not page["page"]["has_next"]:
            return found, False
    return found, True


def build_selection(
    lines: Sequence[Mapping[str, Any]],
    regies: Sequence[Regie],
    chosen: Sequence[str],
    locks: Mapping[str, datetime],
    *,
    truncated: bool = False,
) -> Selection:
    """Group the unpaid invoices of the régies that allow grouped payment; add up what is chosen (an
    informative total: the payment's amounts come from the services)."""
    by_code = {regie.code: regie for regie in regies}
    wanted = set(chosen)
    groups: dict[str, SelectionGroup] = {}
    one_by_one: dict[str, None] = {}
    for line in lines:
        regie = by_code.get(str(line["regie_code"]))
        if regie is None or not regie.online_payment_enabled:
            continue
        if not regie.grouped_payment_allowed:
            one_by_one[regie.name] = None
            continue
        invoice_id = str(line["invoice_id"])
        locked_until = locks.get(invoice_id)
        group = groups.setdefault(regie.code, SelectionGroup(regie.code, regie.name))
        group.rows.append(
            SelectionRow(
                invoice_id=invoice_id,
                number=str(line["number"]),
                issued_on=_date(line.get("issued_on")),
                object=str(line.get("object") or ""),
                amount_cents=int(line["amount_cents"]),
                regie_code=regie.code,
                selected=invoice_id in wanted and locked_until is None,
                locked_until=locked_until,
            )
        )
    picked = [row for group in groups.values() for row in group.rows if row.selected]
    return Selection(
        groups=list(groups.values()),
        count=len(picked),
        total_cents=sum(row.amount_cents for row in picked),
        several_regies=len({row.regie_code for row in picked}) > 1,
        one_by_one=list(one_by_one),
        truncated=truncated,
    )


async def _locks(request: web.Request, invoice_ids: list[str]) -> dict[str, datetime]:
    if not invoice_ids:
        return {}
    found = await request.app[SERVICES].payments.post(
        _resident(request) + "/locks", {"invoice_ids": invoice_ids[:500]}
    )
    locks: dict[str, datetime] = {}
    for lock in found["locks"]:
        until = _datetime(lock["locked_until"])
        if until is not None:
            locks[str(lock["invoice_id"])] = until
    return locks


async def _selection_page(
    request: web.Request, chosen: Sequence[str], *, error: str | None = None, status: int = 200
) -> web.Response:
    lines, truncated = await _unpaid_invoices(request)
    regies = request[TOWN].regies
    grouped_codes = {r.code for r in regies if r.grouped_payment_allowed and r.online_payment_enabled}
    candidates = [str(line["invoice_id"]) for line in lines if line["regie_code"] in grouped_codes]
    locks = await _locks(request, candidates)
    selection = build_selection(lines, regies, chosen, locks, truncated=truncated)
    return render(
        request,
        "payments/selection.html",
        {"selection": selection, "error": error, "max_selected": MAX_SELECTED},
        status=status,
    )


@routes.get(SELECTION_PATH)
@login_required
async def selection_page(request: web.Request) -> web.StreamResponse:
    """«Sélection des factures pour le règlement»; `?facture=<id>` (repeated) are the chosen ones, so
    that without JavaScript «Mettre à jour le total» is a plain page with the server's totals."""
    return await _selection_page(request, selected_ids(request.query.getall("facture", [])))


@routes.post(SELECTION_PATH)
@login_required
async def pay_selection(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    chosen = selected_ids(form.getall("facture", []))
    if form.get("action") == "mettre-a-jour":
        # Post/redirect/get: the totals page has an address of its own (and no CSRF token in it).
        raise web.HTTPSeeOther(selection_path(chosen, "#factures-selectionnees"))
    if not chosen:
        return await _selection_page(
            request, chosen, error="Sélectionnez au moins une facture à régler.", status=422
        )
    if len(chosen) > MAX_SELECTED:
        return await _selection_page(
            request,
            chosen,
            error=f"Un paiement couvre au plus {MAX_SELECTED} factures : réglez-les en plusieurs fois.",
            status=422,
        )
    started = await _start(request, chosen)
    if isinstance(started, Refusal):
        if started.failed:
            return _not_started(request, started, selection_path(chosen))
        # A rule refused this choice (two régies, an invoice being paid…): the same page, choice kept.
        return await _selection_page(request, chosen, error=started.message, status=started.status)
    raise web.HTTPSeeOther(started)


# --- back from PayFiP --------------------------------------------------------------------------------


@routes.get(RETURN_PATH)
@login_required
async def payment_return(request: web.Request) -> web.StreamResponse:
    """PayFiP sends the browser here (`urlredirect?idop=…`). The payments service asks PayFiP for the
    result; this page says what it confirmed. Another resident's or an unknown idOp is not found."""
    idop = request.query.get("idop", "").strip()
    if not _IDOP.match(idop):
        raise web.HTTPNotFound()
    try:
        answer = await request.app[SERVICES].payments.post(
            _resident(request) + "/payments/returned",
            {"idop": idop},
            timeout_seconds=_payment_timeout(request),
        )
    except ServiceError as error:
        if error.status in (404, 422):
            raise web.HTTPNotFound() from None
        raise
    except ServiceUnavailable as error:
        log.warning("payment_return_unconfirmed", reason=error.reason)
        return render(request, "payments/return_unavailable.html", {"idop": idop}, status=503)
    payment = PaymentView.from_json(answer)
    return render(request, "payments/return.html", {"payment": payment, "refresh_path": return_path(idop)})


# --- R12: «Mes règlements» ---------------------------------------------------------------------------


@routes.get("/reglements")
@login_required
async def payments_list(request: web.Request) -> web.StreamResponse:
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    page = min(max(page, 1), 100_000)
    answer = await request.app[SERVICES].payments.get(
        _resident(request) + "/payments", params={"page": str(page), "per_page": str(PAYMENTS_PER_PAGE)}
    )
    total = int(answer["total"])
    page_count = max(1, math.ceil(total / PAYMENTS_PER_PAGE))
    if page > page_count:
        raise web.HTTPNotFound()
    return render(
        request,
        "payments/list.html",
        {
            "payments": [PaymentView.from_json(p) for p in answer["payments"]],
            "page": page,
            "page_count": page_count,
            "total": total,
            "return_path": return_path,
        },
    )
