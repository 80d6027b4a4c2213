"""HTTP routes of the invoices service: parse, call a handler, answer JSON. Nothing else.

- `/admin/...`: the operations team (internal token): towns, régies, office API keys.
- `/towns/...`: questions the gateway and the payments service ask (internal token): which town is this
  host, a resident's invoices (always by town AND account: a foreign id answers 404 like a missing one),
  what is payable.
- `/office/...`: the town's billing office, authenticated by its own API key (`Authorization: Bearer`);
  every query is scoped to the key's town.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.invoices import handlers
from services.invoices.api_models import (
    CSV_BODY_SCHEMA,
    ActionOut,
    AnswerIn,
    CancelIn,
    DeclarationIn,
    DeclarationsQuery,
    ExportQuery,
    ImportJsonDoc,
    ImportOut,
    ImportRecordOut,
    ImportsOut,
    IncidentOut,
    IncidentsOut,
    InvoiceActionsOut,
    InvoiceDetail,
    InvoiceLine,
    InvoicePageOut,
    ListQuery,
    MessageIn,
    MessageOut,
    OfficeDeclarationOut,
    OfficeDeclarationsOut,
    OfficeInvoiceOut,
    OfficeInvoicesOut,
    OfficeInvoicesQuery,
    OfficeMessageOut,
    OfficeMessagesOut,
    PageInfo,
    PageQuery,
    PaidElsewhereIn,
    PayableIn,
    PayableInvoice,
    PayableOut,
    PayableTown,
    PdfStoredOut,
    PreferencesIn,
    PreferencesOut,
    RegieOut,
    ResidentInvoicesOut,
    ResidentTotalsOut,
    inline_schema,
)
from services.invoices.domain import (
    AccountNotFound,
    Debtor,
    DeclarationAlreadyAnswered,
    DeclarationNotFound,
    DomainError,
    Invoice,
    InvoiceActionRefused,
    InvoiceNotFound,
    Page,
    PdfUnavailable,
    Regie,
    TooManyMessages,
    Town,
    TownNotFound,
    declaration_verdict,
    download_verdict,
    normalise_host,
    online_payment_verdict,
    pdf_file_name,
)
from services.invoices.import_format import (
    ImportLimits,
    ImportRejected,
    ParsedImport,
    RowProblem,
    neutralise_formula,
    parse_csv,
    parse_json_rows,
    parse_zip,
    pdf_problem,
)
from services.invoices.repository import InvoicesUnitOfWork
from services.invoices.settings import SETTINGS
from shared.contracts.values import PARIS, format_datetime
from shared.plumbing.openapi import ApiRoutes
from shared.plumbing.runtime import POOL
from shared.plumbing.web import ApiError, error_response, json_model, parse_json, parse_query

routes = ApiRoutes(
    title="Le portail des factures: invoices service",
    security_schemes={"officeKey": {"type": "http", "scheme": "bearer"}},
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegieIn(_Strict):
    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    payfip_client_number: str = Field(pattern=r"^\d{6}$")
    payfip_mode: Literal["T", "X", "W"] = "T"
    online_payment_enabled: bool = True
    grouped_payment_allowed: bool = False


class TownIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    public_url: str = Field(min_length=8, max_length=300)
    hosts: list[str] = Field(default_factory=list, max_length=20)
    contact_email: str = Field(max_length=254)
    logo_url: str | None = Field(default=None, max_length=500)
    alerts_enabled: bool = True
    password_min_length: int = Field(default=8, ge=1, le=64)
    regies: list[RegieIn] = Field(default_factory=list, max_length=50)


class TownOut(BaseModel):
    town_id: uuid.UUID
    slug: str
    name: str
    public_url: str
    hosts: list[str]
    contact_email: str
    logo_url: str | None
    alerts_enabled: bool
    password_min_length: int
    regies: list[RegieOut]

    @classmethod
    def of(cls, town: Town) -> TownOut:
        return cls(
            town_id=town.town_id,
            slug=town.slug,
            name=town.name,
            public_url=town.public_url,
            hosts=list(town.hosts),
            contact_email=town.contact_email,
            logo_url=town.logo_url,
            alerts_enabled=town.alerts_enabled,
            password_min_length=town.password_min_length,
            regies=[RegieOut.of(r) for r in town.regies],
        )


class ApiKeyIn(_Strict):
    label: str = Field(default="", max_length=100)


class ApiKeyOut(BaseModel):
    key_id: uuid.UUID
    api_key: str = Field(description="Shown once; only its hash is kept.")


class DebtorIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    emails: list[str] = Field(default_factory=list, max_length=10)


class DebtorOut(BaseModel):
    debtor_id: uuid.UUID
    reference: str
    name: str
    emails: list[str]


def uow(request: web.Request) -> InvoicesUnitOfWork:
    return InvoicesUnitOfWork(request.app[POOL], producer="invoices")


def reading(request: web.Request) -> InvoicesUnitOfWork:
    """For routes that only read (the pages residents open most): no transaction round trips."""
    return InvoicesUnitOfWork(request.app[POOL], producer="invoices", transactional=False)


# Domain errors → HTTP statuses, in one place; anything not listed is a 422 (the data broke a rule).
_STATUS_OF: dict[type[DomainError], int] = {
    TownNotFound: 404,
    InvoiceNotFound: 404,
    AccountNotFound: 404,
    DeclarationNotFound: 404,
    PdfUnavailable: 404,
    InvoiceActionRefused: 409,
    DeclarationAlreadyAnswered: 409,
    TooManyMessages: 429,
}


def domain_error(error: DomainError) -> ApiError:
    status = next((code for kind, code in _STATUS_OF.items() if isinstance(error, kind)), 422)
    details: dict[str, Any] | None = None
    if isinstance(error, InvoiceActionRefused):
        details = {"reason": error.reason}
    elif isinstance(error, TooManyMessages):
        details = {"retry_after_seconds": error.retry_after}
    return ApiError(status, error.code, error.message, details)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "Ressource introuvable.")


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    """An id from a URL: one that is not even a UUID is as unknown as any other (404, never 422)."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found() from None


def resident_scope(request: web.Request) -> tuple[uuid.UUID, uuid.UUID]:
    return path_uuid(request, "town_id"), path_uuid(request, "account_id")


async def office_town(request: web.Request) -> uuid.UUID:
    """The town whose billing office holds the presented API key; every office query is scoped by it."""
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "Clé d'API manquante (en-tête Authorization: Bearer).")
    async with uow(request) as work:
        town_id = await work.api_keys.town_of(key.strip())
    if town_id is None:
        raise ApiError(401, "unauthorized", "Clé d'API inconnue ou révoquée.")
    return town_id


@routes.route(
    "PUT",
    "/admin/towns/{slug}",
    summary="Create or update a town",
    body=TownIn,
    response=TownOut,
    errors=(404,),
    tags=["admin"],
)
async def put_town(request: web.Request) -> web.Response:
    body = await parse_json(request, TownIn)
    town = Town(
        slug=request.match_info["slug"],
        name=body.name,
        public_url=body.public_url,
        hosts=tuple(body.hosts),
        contact_email=body.contact_email,
        logo_url=body.logo_url,
        alerts_enabled=body.alerts_enabled,
        password_min_length=body.password_min_length,
        regies=tuple(Regie(**r.model_dump()) for r in body.regies),
    )
    try:
        async with uow(request) as work:
            saved = await handlers.configure_town(town, uow=work)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(TownOut.of(saved))


@routes.route(
    "POST",
    "/admin/towns/{slug}/api-keys",
    summary="Issue an API key to a town's billing office",
    body=ApiKeyIn,
    response=ApiKeyOut,
    status=201,
    errors=(404,),
    tags=["admin"],
)
async def post_api_key(request: web.Request) -> web.Response:
    body = await parse_json(request, ApiKeyIn)
    try:
        async with uow(request) as work:
            key_id, raw_key = await handlers.create_api_key(request.match_info["slug"], body.label, uow=work)
    except TownNotFound as error:
        raise domain_error(error) from None
    return json_model(ApiKeyOut(key_id=key_id, api_key=raw_key), status=201)


@routes.route(
    "GET",
    "/towns/by-host/{host}",
    summary="The town served on a host name",
    response=TownOut,
    errors=(404,),
    tags=["internal"],
)
async def get_town_by_host(request: web.Request) -> web.Response:
    async with uow(request) as work:
        town = await work.towns.by_host(normalise_host(request.match_info["host"]))
    if town is None:
        raise ApiError(404, "town_not_found", "Aucune commune n'est servie à cette adresse.")
    return json_model(TownOut.of(town))


@routes.route(
    "PUT",
    "/office/debtors/{reference}",
    summary="Create or update a debtor and their e-mails",
    body=DebtorIn,
    response=DebtorOut,
    security="officeKey",
    tags=["office"],
)
async def put_debtor(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    body = await parse_json(request, DebtorIn)
    debtor = Debtor(
        town_id=town_id, reference=request.match_info["reference"], name=body.name, emails=tuple(body.emails)
    )
    try:
        async with uow(request) as work:
            saved = await handlers.upsert_debtor(debtor, uow=work)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(
        DebtorOut(
            debtor_id=saved.debtor_id, reference=saved.reference, name=saved.name, emails=list(saved.emails)
        )
    )


def paris_now() -> datetime:
    return datetime.now(PARIS)


# --- residents (called by the gateway) -------------------------------------------------------------

RESIDENT = "/towns/{town_id}/accounts/{account_id}"
INVOICES_PER_PAGE = 50


def invoice_actions(invoice: Invoice, *, can_generate_pdf: bool) -> InvoiceActionsOut:
    return InvoiceActionsOut(
        download=ActionOut.of(
            download_verdict(has_pdf=invoice.pdf_source is not None, can_generate=can_generate_pdf)
        ),
        pay_online=ActionOut.of(
            online_payment_verdict(
                invoice.state, invoice.amount_cents, regie_online=invoice.regie.online_payment_enabled
            )
        ),
        declare=ActionOut.of(declaration_verdict(invoice.state)),
    )


async def invoice_page(request: web.Request, work: InvoicesUnitOfWork, invoice: Invoice) -> InvoicePageOut:
    declaration = await work.declarations.latest_of_invoice(invoice.invoice_id)
    return InvoicePageOut(
        invoice=InvoiceDetail.of(invoice, declaration),
        actions=invoice_actions(invoice, can_generate_pdf=request.app[SETTINGS].generate_missing_pdfs),
    )


@routes.route(
    "GET",
    RESIDENT + "/invoices",
    summary="«Mes factures»: a resident's invoices, newest first, 50 per page",
    query=PageQuery,
    response=ResidentInvoicesOut,
    errors=(404,),
    tags=["residents"],
)
async def get_resident_invoices(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    query = parse_query(request, PageQuery)
    async with reading(request) as work:
        totals = await work.invoices.totals_of_account(town_id, account_id)
        page = Page(query.page, INVOICES_PER_PAGE, totals.count)
        invoices = await work.invoices.of_account(town_id, account_id, limit=page.size, offset=page.offset)
    return json_model(
        ResidentInvoicesOut(
            invoices=[InvoiceLine.of(i) for i in invoices],
            page=PageInfo.of(page),
            totals=ResidentTotalsOut.of(totals),
        )
    )


@routes.route(
    "GET",
    RESIDENT + "/invoices/{invoice_id}",
    summary="An invoice's page: its details and, for each action, whether it applies and why not",
    response=InvoicePageOut,
    errors=(404,),
    tags=["residents"],
)
async def get_resident_invoice(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    invoice_id = path_uuid(request, "invoice_id")
    async with uow(request) as work:
        invoice = await work.invoices.of_account_by_id(town_id, account_id, invoice_id)
        if invoice is None:
            raise domain_error(InvoiceNotFound("Facture introuvable."))
        page = await invoice_page(request, work, invoice)
    return json_model(page)


@routes.route(
    "GET",
    RESIDENT + "/invoices/{invoice_id}/pdf",
    summary="The invoice's PDF (the office's, or drawn by the portal at the first download)",
    raw_response={"application/pdf": {"type": "string", "format": "binary"}},
    errors=(404,),
    tags=["residents"],
)
async def get_resident_invoice_pdf(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    invoice_id = path_uuid(request, "invoice_id")
    try:
        async with uow(request) as work:
            invoice, content = await handlers.invoice_pdf(
                town_id,
                account_id,
                invoice_id,
                can_generate=request.app[SETTINGS].generate_missing_pdfs,
                uow=work,
            )
    except DomainError as error:
        raise domain_error(error) from None
    return web.Response(
        body=content,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{pdf_file_name(invoice.number)}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@routes.route(
    "POST",
    RESIDENT + "/invoices/{invoice_id}/declarations",
    summary="«Marquer la facture comme réglée»: the resident says how and when they paid",
    body=DeclarationIn,
    response=InvoicePageOut,
    status=201,
    errors=(404, 409),
    tags=["residents"],
)
async def post_declaration(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    invoice_id = path_uuid(request, "invoice_id")
    body = await parse_json(request, DeclarationIn)
    try:
        async with uow(request) as work:
            invoice, _ = await handlers.declare_payment(
                town_id,
                account_id,
                invoice_id,
                method=body.method,
                paid_on=body.paid_on,
                comment=body.comment,
                today=paris_now().date(),
                uow=work,
            )
            page = await invoice_page(request, work, invoice)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(page, status=201)


@routes.route(
    "POST",
    RESIDENT + "/messages",
    summary="«Contact»: a message to the billing office (e-mailed to it, acknowledged to the resident)",
    body=MessageIn,
    response=MessageOut,
    status=201,
    errors=(404, 429),
    tags=["residents"],
)
async def post_message(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    body = await parse_json(request, MessageIn)
    try:
        async with uow(request) as work:
            message = await handlers.send_contact_message(
                town_id,
                account_id,
                subject=body.subject,
                body=body.body,
                now=datetime.now(UTC),
                per_hour=request.app[SETTINGS].contact_messages_per_hour,
                uow=work,
            )
    except TooManyMessages as error:
        response = error_response(429, error.code, error.message, {"retry_after_seconds": error.retry_after})
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(MessageOut(message_id=message.message_id, created_at=message.created_at), status=201)


async def _preferences(work: InvoicesUnitOfWork, town_id: uuid.UUID, account_id: uuid.UUID) -> PreferencesOut:
    account = await work.accounts.get(town_id, account_id)
    town = await work.towns.by_id(town_id)
    if account is None or town is None:
        raise domain_error(AccountNotFound("Compte inconnu."))
    return PreferencesOut(alerts_enabled=account.alerts_enabled, town_alerts_enabled=town.alerts_enabled)


@routes.route(
    "GET",
    RESIDENT + "/preferences",
    summary="The resident's alert choice («Mes informations»)",
    response=PreferencesOut,
    errors=(404,),
    tags=["residents"],
)
async def get_preferences(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    async with uow(request) as work:
        preferences = await _preferences(work, town_id, account_id)
    return json_model(preferences)


@routes.route(
    "PUT",
    RESIDENT + "/preferences",
    summary="Turn the new-invoice alerts on or off",
    body=PreferencesIn,
    response=PreferencesOut,
    errors=(404,),
    tags=["residents"],
)
async def put_preferences(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    body = await parse_json(request, PreferencesIn)
    try:
        async with uow(request) as work:
            await handlers.set_alert_preference(town_id, account_id, body.alerts_enabled, uow=work)
            preferences = await _preferences(work, town_id, account_id)
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(preferences)


@routes.route(
    "POST",
    RESIDENT + "/payable",
    summary="For the payments service: what these invoices cost now and whether each can be paid online",
    body=PayableIn,
    response=PayableOut,
    errors=(404,),
    tags=["internal"],
)
async def post_payable(request: web.Request) -> web.Response:
    town_id, account_id = resident_scope(request)
    body = await parse_json(request, PayableIn)
    wanted = list(dict.fromkeys(body.invoice_ids))
    async with uow(request) as work:
        town = await work.towns.by_id(town_id)
        found = {i.invoice_id: i for i in await work.invoices.of_account_by_ids(town_id, account_id, wanted)}
    if town is None or len(found) != len(wanted):
        raise ApiError(404, "invoice_not_found", "Facture introuvable pour ce compte.")
    items = []
    for invoice_id in wanted:
        invoice = found[invoice_id]
        verdict = online_payment_verdict(
            invoice.state, invoice.amount_cents, regie_online=invoice.regie.online_payment_enabled
        )
        items.append(
            PayableInvoice(
                invoice_id=invoice.invoice_id,
                number=invoice.number,
                amount_cents=invoice.amount_cents,
                state=invoice.state,
                payfip_reference=invoice.payfip_reference,
                payfip_year=invoice.payfip_year,
                object=invoice.object,
                regie=RegieOut.of(invoice.regie),
                payable=verdict.allowed,
                reason=verdict.reason,
            )
        )
    return json_model(
        PayableOut(
            town=PayableTown(town_id=town.town_id, name=town.name, public_url=town.public_url), invoices=items
        )
    )


# --- the office: imports and PDFs --------------------------------------------------------------------

IMPORT_MEDIA = {
    "text/csv": "csv",
    "application/json": "json",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",  # what Windows says of a zip
}


def _parse_json_import(body: bytes, regie_codes: list[str], limits: ImportLimits) -> ParsedImport:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ImportRejected(
            [_file_problem("invalid_json", "Le corps n'est pas du JSON valide (UTF-8).")]
        ) from None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("invoices"), list)
        or set(document) != {"invoices"}
    ):
        raise ImportRejected(
            [_file_problem("invalid_json", 'Le JSON attendu est un objet {"invoices": [ … ]}.')]
        )
    return parse_json_rows(document["invoices"], regie_codes=regie_codes, limits=limits)


def _file_problem(code: str, message: str) -> RowProblem:
    return RowProblem(0, None, code, message)


@routes.route(
    "POST",
    "/office/imports",
    summary="Import invoices: a CSV, the same rows as JSON, or a zip of the CSV and PDFs (all or nothing)",
    raw_body={
        "text/csv": CSV_BODY_SCHEMA,
        "application/json": inline_schema(ImportJsonDoc),
        "application/zip": {
            "type": "string",
            "format": "binary",
            "description": "One .csv and <number>.pdf files.",
        },
    },
    response=ImportOut,
    errors=(413, 415, 422),
    security="officeKey",
    tags=["office"],
)
async def post_import(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    settings = request.app[SETTINGS]
    limits = settings.import_limits
    source = IMPORT_MEDIA.get(request.content_type)
    if source is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Envoyez le fichier en text/csv, application/json ou application/zip.",
        )
    limit = limits.max_zip_bytes if source == "zip" else limits.max_csv_bytes * (2 if source == "json" else 1)
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413,
            "file_too_large",
            f"Le fichier dépasse {limit // 1024**2} Mo : découpez-le en plusieurs fichiers.",
        )
    body = await request.read()
    checksum = hashlib.sha256(body).hexdigest()
    async with uow(request) as work:
        town = await work.towns.by_id(town_id)
    assert town is not None  # the key's town
    codes = [r.code for r in town.regies]
    try:
        if source == "csv":
            parsed = await asyncio.to_thread(parse_csv, body, regie_codes=codes, limits=limits)
        elif source == "json":
            parsed = await asyncio.to_thread(_parse_json_import, body, codes, limits)
        else:
            parsed = await asyncio.to_thread(parse_zip, body, regie_codes=codes, limits=limits)
    except ImportRejected as rejected:
        # A body sent without its length is only measured once read: too big is still a 413.
        too_big = [p.code for p in rejected.problems] == ["file_too_large"]
        raise ApiError(
            413 if too_big else 422,
            "import_rejected",
            rejected.summary,
            [p.as_json() for p in rejected.problems],
        ) from None
    async with uow(request) as work:
        summary = await handlers.import_invoices(town, parsed, source=source, checksum=checksum, uow=work)
    return json_model(ImportOut.of(summary))


@routes.route(
    "GET",
    "/office/imports",
    summary="The town's last 100 imports and what each did",
    response=ImportsOut,
    security="officeKey",
    tags=["office"],
)
async def get_imports(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    async with uow(request) as work:
        records = await work.imports.recent(town_id, limit=100)
    return json_model(ImportsOut(imports=[ImportRecordOut.of(r) for r in records]))


@routes.route(
    "PUT",
    "/office/invoices/{number}/pdf",
    summary="The office's PDF of one invoice (replaces a generated one)",
    raw_body={"application/pdf": {"type": "string", "format": "binary"}},
    response=PdfStoredOut,
    errors=(404, 413, 415, 422),
    security="officeKey",
    tags=["office"],
)
async def put_invoice_pdf(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    settings = request.app[SETTINGS]
    if request.content_type != "application/pdf":
        raise ApiError(415, "unsupported_media_type", "Envoyez le PDF en application/pdf.")
    if request.content_length is not None and request.content_length > settings.pdf_max_bytes:
        raise ApiError(413, "pdf_too_large", f"Le PDF dépasse {settings.pdf_max_bytes // 1024**2} Mo.")
    content = await request.read()
    problem = pdf_problem(content, max_bytes=settings.pdf_max_bytes)
    if problem is not None:
        raise ApiError(413 if problem[0] == "pdf_too_large" else 422, problem[0], problem[1])
    number = request.match_info["number"]
    try:
        async with uow(request) as work:
            changed = await handlers.store_office_pdf(town_id, number, content, uow=work)
            invoice = await work.invoices.by_number(town_id, number)
    except DomainError as error:
        raise domain_error(error) from None
    assert invoice is not None
    return json_model(
        PdfStoredOut(invoice_id=invoice.invoice_id, number=number, changed=changed, size=len(content))
    )


# --- the office: invoices ------------------------------------------------------------------------------


@routes.route(
    "GET",
    "/office/invoices",
    summary="The town's invoices and their states (filters: state, number, debtor reference)",
    query=OfficeInvoicesQuery,
    response=OfficeInvoicesOut,
    security="officeKey",
    tags=["office"],
)
async def get_office_invoices(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    query = parse_query(request, OfficeInvoicesQuery)
    async with uow(request) as work:
        invoices, total = await work.invoices.of_town(
            town_id,
            state=query.state,
            number=query.number,
            debtor_reference=query.debtor,
            limit=query.per_page,
            offset=(query.page - 1) * query.per_page,
        )
    return json_model(
        OfficeInvoicesOut(
            invoices=[OfficeInvoiceOut.of(i) for i in invoices],
            page=PageInfo.of(Page(query.page, query.per_page, total)),
        )
    )


@routes.route(
    "GET",
    "/office/invoices/{number}",
    summary="One invoice of the town, by its number",
    response=OfficeInvoiceOut,
    errors=(404,),
    security="officeKey",
    tags=["office"],
)
async def get_office_invoice(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    async with uow(request) as work:
        invoice = await work.invoices.by_number(town_id, request.match_info["number"])
    if invoice is None:
        raise domain_error(InvoiceNotFound("Aucune facture de ce numéro dans cette commune."))
    return json_model(OfficeInvoiceOut.of(invoice))


@routes.route(
    "POST",
    "/office/invoices/{number}/cancel",
    summary="Cancel an invoice with a reason (not once it is paid)",
    body=CancelIn,
    response=OfficeInvoiceOut,
    errors=(404, 409),
    security="officeKey",
    tags=["office"],
)
async def post_cancel(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    body = await parse_json(request, CancelIn)
    try:
        async with uow(request) as work:
            invoice = await handlers.cancel_invoice(
                town_id, request.match_info["number"], body.reason, uow=work
            )
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(OfficeInvoiceOut.of(invoice))


@routes.route(
    "POST",
    "/office/invoices/{number}/paid-elsewhere",
    summary="Mark an invoice paid by another channel (confirms a pending declaration)",
    body=PaidElsewhereIn,
    response=OfficeInvoiceOut,
    errors=(404, 409),
    security="officeKey",
    tags=["office"],
)
async def post_paid_elsewhere(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    body = await parse_json(request, PaidElsewhereIn)
    try:
        async with uow(request) as work:
            invoice = await handlers.mark_paid_elsewhere(
                town_id, request.match_info["number"], body.comment, now=datetime.now(UTC), uow=work
            )
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(OfficeInvoiceOut.of(invoice))


# --- the office: declarations, messages, incidents, payments --------------------------------------


@routes.route(
    "GET",
    "/office/declarations",
    summary="Residents' declarations of payment (filter: state)",
    query=DeclarationsQuery,
    response=OfficeDeclarationsOut,
    security="officeKey",
    tags=["office"],
)
async def get_declarations(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    query = parse_query(request, DeclarationsQuery)
    async with uow(request) as work:
        declarations, total = await work.declarations.of_town(
            town_id, state=query.state, limit=query.per_page, offset=(query.page - 1) * query.per_page
        )
    return json_model(
        OfficeDeclarationsOut(
            declarations=[OfficeDeclarationOut.of(d) for d in declarations],
            page=PageInfo.of(Page(query.page, query.per_page, total)),
        )
    )


@routes.route(
    "POST",
    "/office/declarations/{declaration_id}/answer",
    summary="Confirm (the invoice is paid elsewhere) or reject (it is to pay) a declaration",
    body=AnswerIn,
    response=OfficeDeclarationOut,
    errors=(404, 409),
    security="officeKey",
    tags=["office"],
)
async def post_declaration_answer(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    declaration_id = path_uuid(request, "declaration_id")
    body = await parse_json(request, AnswerIn)
    try:
        async with uow(request) as work:
            declaration = await handlers.answer_declaration(
                town_id,
                declaration_id,
                accepted=body.accepted,
                comment=body.comment,
                now=datetime.now(UTC),
                uow=work,
            )
    except DomainError as error:
        raise domain_error(error) from None
    return json_model(OfficeDeclarationOut.of(declaration))


@routes.route(
    "GET",
    "/office/messages",
    summary="Residents' messages to the billing office, newest first",
    query=ListQuery,
    response=OfficeMessagesOut,
    security="officeKey",
    tags=["office"],
)
async def get_messages(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    query = parse_query(request, ListQuery)
    async with uow(request) as work:
        messages, total = await work.messages.of_town(
            town_id, limit=query.per_page, offset=(query.page - 1) * query.per_page
        )
    return json_model(
        OfficeMessagesOut(
            messages=[OfficeMessageOut.of(m) for m in messages],
            page=PageInfo.of(Page(query.page, query.per_page, total)),
        )
    )


@routes.route(
    "GET",
    "/office/incidents",
    summary="Payments the portal could not apply by itself (cancelled or already paid invoices…)",
    query=ListQuery,
    response=IncidentsOut,
    security="officeKey",
    tags=["office"],
)
async def get_incidents(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    query = parse_query(request, ListQuery)
    async with uow(request) as work:
        incidents, total = await work.incidents.of_town(
            town_id, limit=query.per_page, offset=(query.page - 1) * query.per_page
        )
    return json_model(
        IncidentsOut(
            incidents=[IncidentOut.of(i) for i in incidents],
            page=PageInfo.of(Page(query.page, query.per_page, total)),
        )
    )


EXPORT_HEADER = (
    "date_paiement",
    "heure_paiement",
    "numero_facture",
    "montant",
    "numero_autorisation",
    "reference_payfip",
    "exercice",
    "regie",
    "identifiant_collectivite",
    "reference_redevable",
    "nom_redevable",
    "moyen",
    "etat_facture",
    "identifiant_paiement",
)


def _euros(cents: int) -> str:
    """25,00: a number a French spreadsheet reads, without the € sign."""
    return f"{cents // 100},{cents % 100:02d}"


@routes.route(
    "GET",
    "/office/payments/export",
    summary="Online payments for reconciliation: CSV (; separated, UTF-8 with BOM, euros with a comma)",
    query=ExportQuery,
    raw_response={"text/csv": {"type": "string"}},
    security="officeKey",
    tags=["office"],
)
async def get_payments_export(request: web.Request) -> web.Response:
    town_id = await office_town(request)
    query = parse_query(request, ExportQuery)
    start = datetime.combine(query.start, time(), PARIS) if query.start else None
    end = datetime.combine(query.end + timedelta(days=1), time(), PARIS) if query.end else None
    async with uow(request) as work:
        town = await work.towns.by_id(town_id)
        lines = await work.settlements.export(town_id, start=start, end=end)
    assert town is not None
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for line in lines:
        paid = format_datetime(line.paid_at).split(" à ")
        cells = [
            paid[0],
            paid[1],
            line.invoice_number,
            _euros(line.amount_cents),
            line.authorisation_number or "",
            line.payfip_reference,
            str(line.payfip_year),
            line.regie_code,
            line.payfip_client_number,
            line.debtor_reference,
            line.debtor_name,
            "carte bancaire" if line.result_code == "P" else "prélèvement SEPA",
            line.invoice_state,
            str(line.payment_id),
        ]
        # Whatever a debtor's name says, a spreadsheet must show it as text, never run it.
        writer.writerow([neutralise_formula(cell) for cell in cells])
    day = paris_now().strftime("%Y-%m-%d")
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode("utf-8"),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="paiements-{town.slug}-{day}.csv"',
            "Cache-Control": "no-store",
        },
    )


async def get_office_openapi(request: web.Request) -> web.Response:
    """The same description under /office/, reachable with an office key only (no internal token)."""
    await office_town(request)
    return web.json_response(routes.document())
