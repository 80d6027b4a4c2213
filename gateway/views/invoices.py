"""The resident's invoices: «Mes factures» (R6), an invoice's page and its PDF (R7), «Marquer la facture
comme réglée» (R11).

The invoices service owns the invoices and says, for each action, whether it applies and why not; the
payments service alone knows whether a payment is in progress (R10). Every call carries the town of the
host and the logged-in account, so an id from another resident or another town answers 404 like a missing
one; an id that is not even a UUID never leaves the gateway.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.clients import SERVICES, Town
from gateway.forms import form_fields
from gateway.rendering import redirect, register_flash, render
from gateway.security import MAX_FORM_BYTES, TOWN
from gateway.sessions import Account, current_account, login_required
from shared.contracts.values import PARIS, format_datetime
from shared.plumbing.http_client import ServiceError, ServiceUnavailable
from shared.plumbing.logging import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()

INVOICE_PATH = "/factures/{invoice_id}"
# The invoices service's page size; the pagination only links to pages it announced.
MAX_PAGE = 100_000
# How long the invoice page waits for the payments service before saying it cannot check (R10): the
# rest of the page does not depend on it.
LOCKS_TIMEOUT_SECONDS = 3.0
PDF_CHUNK_BYTES = 64 * 1024

register_flash(
    "declaration_recorded",
    "success",
    "Votre déclaration est enregistrée : la facture apparaît comme «\u00a0paiement déclaré\u00a0» jusqu'à ce que le "
    "service de facturation la confirme.",
)


# --- what the invoices service answers (only the fields the pages show) ------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class InvoiceLine(_Answer):
    invoice_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: str
    state_label: str
    paid: bool
    regie_code: str


class PageInfo(_Answer):
    page: int
    page_count: int
    total_count: int
    has_previous: bool
    has_next: bool


class Totals(_Answer):
    count: int
    unpaid_count: int
    unpaid_cents: int


class InvoiceList(_Answer):
    invoices: list[InvoiceLine]
    page: PageInfo
    totals: Totals


class Action(_Answer):
    allowed: bool
    reason: str | None
    message: str | None


class Actions(_Answer):
    download: Action
    pay_online: Action
    declare: Action


class RegieInfo(_Answer):
    code: str
    name: str


class DebtorInfo(_Answer):
    name: str


class DeclarationInfo(_Answer):
    method_label: str
    paid_on: date
    comment: str
    state: str
    answer_comment: str
    answered_at: datetime | None
    created_at: datetime


class InvoiceDetail(_Answer):
    invoice_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: str
    state_label: str
    paid: bool
    payfip_reference: str
    regie: RegieInfo
    debtor: DebtorInfo
    cancel_reason: str | None
    settled_at: datetime | None
    declaration: DeclarationInfo | None


class InvoicePage(_Answer):
    invoice: InvoiceDetail
    actions: Actions


class Lock(_Answer):
    invoice_id: uuid.UUID
    own: bool
    locked_until: datetime


class Locks(_Answer):
    locks: list[Lock]


# --- helpers shared by the pages ---------------------------------------------------------------------

# The badge of each state (portail.css); the words come from the invoices service.
STATE_BADGES = {
    "unpaid": "a-regler",
    "paid_online": "reglee",
    "paid_elsewhere": "reglee",
    "declared": "declaree",
    "cancelled": "annulee",
}


def state_words(label: str) -> str:
    """«réglée» → «Réglée»: the service's words start a sentence or a cell on the pages."""
    return label[:1].upper() + label[1:]


def _account(request: web.Request) -> Account:
    account = current_account(request)
    assert account is not None  # @login_required
    return account


def _resident_path(request: web.Request) -> str:
    account = _account(request)
    return f"/towns/{account.town_id}/accounts/{account.account_id}"


def _invoice_id(request: web.Request) -> uuid.UUID:
    """The id in the URL; anything that is not a UUID is as unknown as a foreign id (404, never 500)."""
    try:
        return uuid.UUID(request.match_info["invoice_id"])
    except ValueError:
        raise web.HTTPNotFound() from None


def _parse(model: type[_Answer], data: Any, service: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        # The callee broke its contract: as unusable as a callee that is down.
        log.error(
            "service_answer_unexpected", callee=service, model=model.__name__, errors=error.errors()[:3]
        )
        raise ServiceUnavailable(service, "unexpected answer") from None


async def _invoice_page(request: web.Request, invoice_id: uuid.UUID) -> InvoicePage:
    """The invoice of this resident in this town, or the 404 page."""
    try:
        data = await request.app[SERVICES].invoices.get(f"{_resident_path(request)}/invoices/{invoice_id}")
    except ServiceError as error:
        if error.status == 404:
            raise web.HTTPNotFound() from None
        raise
    page: InvoicePage = _parse(InvoicePage, data, "invoices")
    return page


# --- «Mes factures» ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageLink:
    number: int | None  # None: an ellipsis between distant pages
    current: bool = False


def page_links(current: int, count: int) -> list[PageLink]:
    """1 … 4 5 6 … 12: the first, the last and the neighbours of the current page."""
    wanted = {1, count, current - 1, current, current + 1}
    if count <= 7:
        wanted = set(range(1, count + 1))
    links: list[PageLink] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= count):
        if number - previous > 1:
            links.append(PageLink(None))
        links.append(PageLink(number, current=number == current))
        previous = number
    return links


def grouped_payment_possible(town: Town, listing: InvoiceList) -> bool:
    """Whether «Régler plusieurs factures» has something to offer: two unpaid invoices of one régie that
    takes grouped online payments. On one page the rows are all the invoices, so the answer is exact;
    beyond 50 invoices the unpaid ones may sit on other pages, and the link is offered when the town has
    such a régie and the resident at least two unpaid invoices (the selection page shows what groups)."""
    grouped = {r.code for r in town.regies if r.grouped_payment_allowed and r.online_payment_enabled}
    if not grouped or listing.totals.unpaid_count < 2:
        return False
    per_regie = Counter(
        i.regie_code for i in listing.invoices if i.state == "unpaid" and i.regie_code in grouped
    )
    if any(count >= 2 for count in per_regie.values()):
        return True
    return listing.page.page_count > 1


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise web.HTTPNotFound()
    return int(raw)


@routes.get("/factures")
@login_required
async def invoice_list(request: web.Request) -> web.StreamResponse:
    number = _page_number(request)
    data = await request.app[SERVICES].invoices.get(
        f"{_resident_path(request)}/invoices", params={"page": str(number)}
    )
    listing: InvoiceList = _parse(InvoiceList, data, "invoices")
    if number > 1 and not listing.invoices:
        raise web.HTTPNotFound()  # a page past the last one
    return render(
        request,
        "invoices/list.html",
        {
            "listing": listing,
            "links": page_links(listing.page.page, listing.page.page_count),
            "grouped_payment": grouped_payment_possible(request[TOWN], listing),
            "badges": STATE_BADGES,
            "state_words": state_words,
        },
    )


# --- an invoice's page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionView:
    """One of the invoice's three actions: a link when it applies, else why not, in French."""

    label: str
    href: str | None
    reason: str | None
    kind: Literal["download", "pay", "declare"]


LockState = Lock | Literal["none", "unknown"]


async def _lock_of(request: web.Request, invoice_id: uuid.UUID) -> LockState:
    """The payment in progress on this invoice, "none", or "unknown" when payments cannot say now."""
    try:
        data = await asyncio.wait_for(
            request.app[SERVICES].payments.post(
                f"{_resident_path(request)}/locks", {"invoice_ids": [str(invoice_id)]}
            ),
            LOCKS_TIMEOUT_SECONDS,
        )
        locks: Locks = _parse(Locks, data, "payments")
    except (ServiceUnavailable, ServiceError, TimeoutError) as error:
        log.warning("invoice_page_locks_unknown", invoice_id=str(invoice_id), error=repr(error))
        return "unknown"
    return next((lock for lock in locks.locks if lock.invoice_id == invoice_id), "none")


def lock_reason(lock: Lock) -> str:
    return (
        "Un paiement en ligne de cette facture est en cours de vérification : une nouvelle tentative sera "
        f"possible après le {format_datetime(lock.locked_until)}."
    )


PAYMENTS_UNKNOWN = (
    "Le paiement en ligne ne peut pas être vérifié pour le moment : réessayez dans quelques minutes."
)


def invoice_actions(page: InvoicePage, lock: LockState) -> list[ActionView]:
    invoice_id = page.invoice.invoice_id
    actions = page.actions
    pay_reason = actions.pay_online.message if not actions.pay_online.allowed else None
    if pay_reason is None and isinstance(lock, Lock):
        pay_reason = lock_reason(lock)
    elif pay_reason is None and lock == "unknown":
        pay_reason = PAYMENTS_UNKNOWN
    return [
        ActionView(
            "Télécharger la facture (PDF)",
            f"/factures/{invoice_id}/pdf" if actions.download.allowed else None,
            None if actions.download.allowed else actions.download.message,
            "download",
        ),
        ActionView(
            "Payer en ligne",
            f"/reglement/{invoice_id}" if pay_reason is None else None,
            pay_reason,
            "pay",
        ),
        ActionView(
            "Marquer la facture comme réglée",
            f"/factures/{invoice_id}/declarer" if actions.declare.allowed else None,
            None if actions.declare.allowed else actions.declare.message,
            "declare",
        ),
    ]


@routes.get(INVOICE_PATH)
@login_required
async def invoice(request: web.Request) -> web.StreamResponse:
    invoice_id = _invoice_id(request)
    page = await _invoice_page(request, invoice_id)
    # Only an invoice the resident may pay is worth asking payments about (and only theirs is ever asked).
    lock: LockState = await _lock_of(request, invoice_id) if page.actions.pay_online.allowed else "none"
    return render(
        request,
        "invoices/invoice.html",
        {
            "invoice": page.invoice,
            "actions": invoice_actions(page, lock),
            "badges": STATE_BADGES,
            "state_words": state_words,
        },
    )


# --- the PDF -------------------------------------------------------------------------------------------

_UNSAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def safe_pdf_name(name: str | None) -> str:
    """`facture-2015-001-001078.pdf`: only letters, digits, `.`, `_` and `-`, whatever the service said,
    so that no quote, slash or line break ever reaches the header or the resident's disk."""
    stem = _UNSAFE_FILE_NAME.sub("_", (name or "").removesuffix(".pdf")).strip("._")[:100]
    return f"{stem or 'facture'}.pdf"


async def _pass_through(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The PDF chunk by chunk as it arrives: never more than a chunk held in memory."""
    try:
        async for chunk in upstream.content.iter_chunked(PDF_CHUNK_BYTES):
            yield chunk
    finally:
        upstream.release()


@routes.get(INVOICE_PATH + "/pdf")
@login_required
async def invoice_pdf(request: web.Request) -> web.StreamResponse:
    invoice_id = _invoice_id(request)
    upstream = await request.app[SERVICES].invoices.stream(
        f"{_resident_path(request)}/invoices/{invoice_id}/pdf"
    )
    if upstream.status != 200:
        upstream.release()
        if upstream.status == 404:  # not theirs, not there, or no document: the same page
            raise web.HTTPNotFound()
        log.warning("invoice_pdf_refused", invoice_id=str(invoice_id), status=upstream.status)
        raise web.HTTPBadRequest()
    file_name = safe_pdf_name(upstream.content_disposition.filename if upstream.content_disposition else None)
    headers = {
        "Content-Disposition": f'attachment; filename="{file_name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    length = upstream.headers.get("Content-Length")
    if length and length.isdigit() and "Content-Encoding" not in upstream.headers:
        headers["Content-Length"] = length
    if request.method == "HEAD":  # the headers only: give the connection back at once
        upstream.release()
        return web.Response(content_type="application/pdf", headers=headers)
    # A body that is an async iterator: the response is still returned through the middlewares (security
    # headers), and the bytes flow from the invoices service to the browser without being gathered.
    return web.Response(body=_pass_through(upstream), content_type="application/pdf", headers=headers)


# --- «Marquer la facture comme réglée» -----------------------------------------------------------------

METHODS = (("cheque", "Chèque"), ("cash", "Espèces"), ("transfer", "Virement"), ("other", "Autre moyen"))
COMMENT_MAX = 500  # the invoices service's limit, checked here to answer in the form
DECLARATION_FIELDS = ("method", "paid_on", "comment")


def paris_today() -> date:
    return datetime.now(PARIS).date()


def parse_day(text: str) -> date | None:
    """A date from `<input type="date">` (2015-09-02), or typed the French way where a browser shows a
    plain text box (02/09/2015)."""
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def declaration_errors(fields: dict[str, str], today: date) -> dict[str, str]:
    """Per field, what is wrong, in the order of the form."""
    errors: dict[str, str] = {}
    if fields["method"] not in dict(METHODS):
        errors["method"] = "Choisissez comment vous avez réglé la facture."
    paid_on = parse_day(fields["paid_on"])
    if not fields["paid_on"].strip():
        errors["paid_on"] = "Indiquez la date du règlement."
    elif paid_on is None:
        errors["paid_on"] = "Indiquez une date valide, par exemple 02/09/2015."
    elif paid_on > today:
        errors["paid_on"] = "La date du règlement ne peut pas être dans le futur."
    elif paid_on.year < 2000:
        errors["paid_on"] = "La date du règlement est trop ancienne."
    if len(fields["comment"].strip()) > COMMENT_MAX:
        errors["comment"] = (
            f"Le commentaire dépasse {COMMENT_MAX} caractères (il en compte {len(fields['comment'].strip())})."
        )
    return errors


def _declaration_form(
    request: web.Request,
    page: InvoicePage,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refusal: str | None = None,
    status: int = 200,
) -> web.Response:
    values = values or {}
    paid_on = parse_day(values.get("paid_on", ""))
    return render(
        request,
        "invoices/declare.html",
        {
            "invoice": page.invoice,
            "refusal": refusal
            if refusal is not None
            else (None if page.actions.declare.allowed else page.actions.declare.message),
            "methods": METHODS,
            "values": values
            # A date the browser's date field can show again must be written the ISO way.
            | ({"paid_on": paid_on.isoformat()} if paid_on else {}),
            "errors": errors or {},
            "today": paris_today().isoformat(),
            "comment_max": COMMENT_MAX,
        },
        status=status,
    )


@routes.get(INVOICE_PATH + "/declarer")
@login_required
async def declaration_page(request: web.Request) -> web.StreamResponse:
    page = await _invoice_page(request, _invoice_id(request))
    return _declaration_form(request, page)


@routes.post(INVOICE_PATH + "/declarer")
@login_required
async def declare(request: web.Request) -> web.StreamResponse:
    invoice_id = _invoice_id(request)
    # The whole field (the CSRF check already bounds a form to 64 KiB), so that a length is told truly.
    fields = await form_fields(request, *DECLARATION_FIELDS, max_length=MAX_FORM_BYTES)
    errors = declaration_errors(fields, paris_today())
    if errors:
        page = await _invoice_page(request, invoice_id)  # a foreign id is a 404 even with a bad form
        return _declaration_form(request, page, values=fields, errors=errors, status=422)
    paid_on = parse_day(fields["paid_on"])
    assert paid_on is not None
    try:
        await request.app[SERVICES].invoices.post(
            f"{_resident_path(request)}/invoices/{invoice_id}/declarations",
            {
                "method": fields["method"],
                "paid_on": paid_on.isoformat(),
                "comment": fields["comment"].strip(),
            },
        )
    except ServiceError as error:
        if error.status == 404:
            raise web.HTTPNotFound() from None
        if error.status not in (409, 422):
            raise
        page = await _invoice_page(request, invoice_id)
        if error.status == 409:  # paid, cancelled or declared meanwhile: say why, keep nothing to submit
            return _declaration_form(request, page, values=fields, refusal=error.message, status=409)
        field = "comment" if "commentaire" in error.message.lower() else "paid_on"
        return _declaration_form(request, page, values=fields, errors={field: error.message}, status=422)
    raise redirect(request, f"/factures/{invoice_id}", flash="declaration_recorded")
