"""The JSON shapes of the invoices service's HTTP API, described in OpenAPI from these models.

Amounts are integer cents and dates ISO 8601: formatting for people (`25,00 €`, `02/09/2015`) happens at
the edge (the gateway). Labels in French (`state_label`, `message`) are the domain's words, given so that
every page says the same thing.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.invoices.domain import (
    METHOD_LABELS,
    ContactMessage,
    Declaration,
    Incident,
    Invoice,
    Page,
    Regie,
    Verdict,
    pdf_file_name,
)
from services.invoices.handlers import ImportSummary
from services.invoices.import_format import COLUMNS
from services.invoices.repository import ImportRecord, ResidentTotals

InvoiceStateName = Literal["unpaid", "paid_online", "paid_elsewhere", "declared", "cancelled"]
ReasonName = Literal["paid", "cancelled", "declared", "no_pdf", "amount_out_of_bounds", "regie_closed"]
PayableReasonName = Literal["paid", "cancelled", "declared", "regie_closed", "amount_out_of_bounds"]
MethodName = Literal["cheque", "cash", "transfer", "other"]
DeclarationStateName = Literal["pending", "confirmed", "rejected", "superseded"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- shared parts ----------------------------------------------------------------------------------


class RegieOut(BaseModel):
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str
    payfip_mode: str
    online_payment_enabled: bool
    grouped_payment_allowed: bool

    @classmethod
    def of(cls, regie: Regie) -> RegieOut:
        return cls(
            regie_id=regie.regie_id,
            code=regie.code,
            name=regie.name,
            payfip_client_number=regie.payfip_client_number,
            payfip_mode=regie.payfip_mode,
            online_payment_enabled=regie.online_payment_enabled,
            grouped_payment_allowed=regie.grouped_payment_allowed,
        )


class PageInfo(BaseModel):
    page: int
    per_page: int
    total_count: int
    page_count: int
    has_previous: bool
    has_next: bool

    @classmethod
    def of(cls, page: Page) -> PageInfo:
        return cls(
            page=page.number,
            per_page=page.size,
            total_count=page.total,
            page_count=page.count,
            has_previous=page.number > 1,
            has_next=page.number < page.count,
        )


class PageQuery(_Strict):
    page: int = Field(default=1, ge=1, le=100_000)


# --- residents ---------------------------------------------------------------------------------------


class InvoiceLine(BaseModel):
    """A row of «Mes factures»."""

    invoice_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: InvoiceStateName
    state_label: str = Field(description="The state in French words: «à régler», «réglée en ligne»…")
    paid: bool = Field(description="Shown on a yellow background (paid online or elsewhere).")
    regie_code: str
    regie_name: str

    @classmethod
    def of(cls, invoice: Invoice) -> InvoiceLine:
        return cls(
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
            amount_cents=invoice.amount_cents,
            object=invoice.object,
            state=invoice.state,
            state_label=invoice.state_label,
            paid=invoice.is_paid,
            regie_code=invoice.regie.code,
            regie_name=invoice.regie.name,
        )


class ResidentTotalsOut(BaseModel):
    count: int
    unpaid_count: int
    unpaid_cents: int

    @classmethod
    def of(cls, totals: ResidentTotals) -> ResidentTotalsOut:
        return cls(count=totals.count, unpaid_count=totals.unpaid_count, unpaid_cents=totals.unpaid_cents)


class ResidentInvoicesOut(BaseModel):
    invoices: list[InvoiceLine]
    page: PageInfo
    totals: ResidentTotalsOut


class ActionOut(BaseModel):
    allowed: bool
    reason: ReasonName | None = Field(description="Why the action does not apply (stable code).")
    message: str | None = Field(description="The same reason, in French, for the resident.")

    @classmethod
    def of(cls, verdict: Verdict) -> ActionOut:
        return cls(allowed=verdict.allowed, reason=verdict.reason, message=verdict.message)


class InvoiceActionsOut(BaseModel):
    download: ActionOut
    pay_online: ActionOut = Field(
        description="A payment in progress is known to the payments service; the gateway adds that reason."
    )
    declare: ActionOut


class ResidentDeclarationOut(BaseModel):
    declaration_id: uuid.UUID
    method: MethodName
    method_label: str
    paid_on: date
    comment: str
    state: DeclarationStateName
    answer_comment: str
    answered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, declaration: Declaration) -> ResidentDeclarationOut:
        return cls(
            declaration_id=declaration.declaration_id,
            method=declaration.method,
            method_label=METHOD_LABELS[declaration.method],
            paid_on=declaration.paid_on,
            comment=declaration.comment,
            state=declaration.state,
            answer_comment=declaration.answer_comment,
            answered_at=declaration.answered_at,
            created_at=declaration.created_at,
        )


class PdfInfo(BaseModel):
    file_name: str
    source: Literal["office", "generated"] | None = Field(
        description="office: supplied by the billing office; generated: drawn by the portal; null: drawn at"
        " the first download."
    )


class DebtorSummary(BaseModel):
    reference: str
    name: str


class InvoiceDetail(BaseModel):
    invoice_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: InvoiceStateName
    state_label: str
    paid: bool
    payfip_reference: str
    payfip_year: int
    regie: RegieOut
    debtor: DebtorSummary
    cancel_reason: str | None
    settled_at: datetime | None
    pdf: PdfInfo
    declaration: ResidentDeclarationOut | None = Field(description="The latest declaration, if any.")

    @classmethod
    def of(cls, invoice: Invoice, declaration: Declaration | None) -> InvoiceDetail:
        return cls(
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
            amount_cents=invoice.amount_cents,
            object=invoice.object,
            state=invoice.state,
            state_label=invoice.state_label,
            paid=invoice.is_paid,
            payfip_reference=invoice.payfip_reference,
            payfip_year=invoice.payfip_year,
            regie=RegieOut.of(invoice.regie),
            debtor=DebtorSummary(reference=invoice.debtor_reference, name=invoice.debtor_name),
            cancel_reason=invoice.cancel_reason,
            settled_at=invoice.settled_at,
            pdf=PdfInfo(file_name=pdf_file_name(invoice.number), source=invoice.pdf_source),
            declaration=ResidentDeclarationOut.of(declaration) if declaration else None,
        )


class InvoicePageOut(BaseModel):
    invoice: InvoiceDetail
    actions: InvoiceActionsOut


class DeclarationIn(_Strict):
    method: MethodName
    paid_on: date
    comment: str = Field(default="", max_length=2000)


class MessageIn(_Strict):
    # Lengths are checked by the domain (French messages); these bounds only cap what is read.
    subject: str = Field(max_length=1000)
    body: str = Field(max_length=20_000)


class MessageOut(BaseModel):
    message_id: uuid.UUID
    created_at: datetime


class PreferencesIn(_Strict):
    alerts_enabled: bool


class PreferencesOut(BaseModel):
    alerts_enabled: bool = Field(description="The resident's choice («Mes informations»).")
    town_alerts_enabled: bool = Field(description="Whether the town sends alerts at all.")


# --- the payments service's question -----------------------------------------------------------------


class PayableIn(_Strict):
    invoice_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)


class PayableTown(BaseModel):
    town_id: uuid.UUID
    name: str
    public_url: str


class PayableInvoice(BaseModel):
    invoice_id: uuid.UUID
    number: str
    amount_cents: int
    state: InvoiceStateName
    payfip_reference: str
    payfip_year: int
    object: str
    regie: RegieOut
    payable: bool
    reason: PayableReasonName | None


class PayableOut(BaseModel):
    town: PayableTown
    invoices: list[PayableInvoice]


# --- the office --------------------------------------------------------------------------------------


class OfficeInvoiceOut(BaseModel):
    invoice_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: InvoiceStateName
    state_label: str
    regie_code: str
    debtor_reference: str
    debtor_name: str
    payfip_reference: str
    payfip_year: int
    cancel_reason: str | None
    settled_at: datetime | None
    pdf_source: Literal["office", "generated"] | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, invoice: Invoice) -> OfficeInvoiceOut:
        return cls(
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
            amount_cents=invoice.amount_cents,
            object=invoice.object,
            state=invoice.state,
            state_label=invoice.state_label,
            regie_code=invoice.regie.code,
            debtor_reference=invoice.debtor_reference,
            debtor_name=invoice.debtor_name,
            payfip_reference=invoice.payfip_reference,
            payfip_year=invoice.payfip_year,
            cancel_reason=invoice.cancel_reason,
            settled_at=invoice.settled_at,
            pdf_source=invoice.pdf_source,
            created_at=invoice.created_at,
            updated_at=invoice.updated_at,
        )


class OfficeInvoicesQuery(_Strict):
    state: InvoiceStateName | None = None
    number: str | None = Field(default=None, max_length=40)
    debtor: str | None = Field(default=None, max_length=64, description="A debtor's reference.")
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=100, ge=1, le=500)


class OfficeInvoicesOut(BaseModel):
    invoices: list[OfficeInvoiceOut]
    page: PageInfo


class CancelIn(_Strict):
    reason: str = Field(max_length=2000)


class PaidElsewhereIn(_Strict):
    comment: str = Field(default="", max_length=500)


class PdfStoredOut(BaseModel):
    invoice_id: uuid.UUID
    number: str
    changed: bool
    size: int


class OfficeDeclarationOut(BaseModel):
    declaration_id: uuid.UUID
    invoice_id: uuid.UUID
    invoice_number: str
    account_id: uuid.UUID
    account_email: str | None
    method: MethodName
    method_label: str
    paid_on: date
    comment: str
    state: DeclarationStateName
    answer_comment: str
    answered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, declaration: Declaration) -> OfficeDeclarationOut:
        return cls(
            declaration_id=declaration.declaration_id,
            invoice_id=declaration.invoice_id,
            invoice_number=declaration.invoice_number,
            account_id=declaration.account_id,
            account_email=declaration.account_email,
            method=declaration.method,
            method_label=METHOD_LABELS[declaration.method],
            paid_on=declaration.paid_on,
            comment=declaration.comment,
            state=declaration.state,
            answer_comment=declaration.answer_comment,
            answered_at=declaration.answered_at,
            created_at=declaration.created_at,
        )


class DeclarationsQuery(_Strict):
    state: DeclarationStateName | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=100, ge=1, le=500)


class OfficeDeclarationsOut(BaseModel):
    declarations: list[OfficeDeclarationOut]
    page: PageInfo


class AnswerIn(_Strict):
    accepted: bool = Field(description="true: confirmed (paid elsewhere); false: rejected (to pay again).")
    comment: str = Field(default="", max_length=2000)


class OfficeMessageOut(BaseModel):
    message_id: uuid.UUID
    account_id: uuid.UUID
    resident_email: str
    subject: str
    body: str
    created_at: datetime

    @classmethod
    def of(cls, message: ContactMessage) -> OfficeMessageOut:
        return cls(
            message_id=message.message_id,
            account_id=message.account_id,
            resident_email=message.resident_email,
            subject=message.subject,
            body=message.body,
            created_at=message.created_at,
        )


class ListQuery(_Strict):
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=100, ge=1, le=500)


class OfficeMessagesOut(BaseModel):
    messages: list[OfficeMessageOut]
    page: PageInfo


class IncidentOut(BaseModel):
    incident_id: uuid.UUID
    kind: str
    message: str
    invoice_id: uuid.UUID | None
    invoice_number: str | None
    payment_id: uuid.UUID | None
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, incident: Incident) -> IncidentOut:
        return cls(
            incident_id=incident.incident_id,
            kind=incident.kind,
            message=incident.message,
            invoice_id=incident.invoice_id,
            invoice_number=incident.invoice_number,
            payment_id=incident.payment_id,
            details=incident.details,
            created_at=incident.created_at,
        )


class IncidentsOut(BaseModel):
    incidents: list[IncidentOut]
    page: PageInfo


class ExportQuery(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date | None = Field(default=None, alias="from", description="First day (Paris time), inclusive.")
    end: date | None = Field(default=None, alias="to", description="Last day (Paris time), inclusive.")


class ImportOut(BaseModel):
    import_id: uuid.UUID
    source: Literal["csv", "json", "zip"]
    checksum: str = Field(description="SHA-256 of the body received.")
    encoding: str = Field(description="utf-8, utf-8-sig (with BOM), windows-1252, or json.")
    warnings: list[str]
    rows: int
    created: int
    updated: int
    unchanged: int
    skipped_paid: int = Field(description="Rows that differ from an invoice already paid: left as they were.")
    skipped_paid_numbers: list[str]
    debtors_changed: int
    pdfs_stored: int
    alerts: int = Field(description="Residents who will get one e-mail listing their new invoices.")

    @classmethod
    def of(cls, summary: ImportSummary) -> ImportOut:
        counts = summary.counts
        return cls(
            import_id=summary.import_id,
            source=summary.source,
            checksum=summary.checksum,
            encoding=summary.encoding,
            warnings=list(summary.warnings),
            rows=counts.rows,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            skipped_paid=counts.skipped_paid,
            skipped_paid_numbers=list(summary.skipped_paid_numbers),
            debtors_changed=counts.debtors_changed,
            pdfs_stored=counts.pdfs_stored,
            alerts=counts.alerts,
        )


class ImportRecordOut(BaseModel):
    import_id: uuid.UUID
    source: str
    checksum: str
    encoding: str
    rows: int
    created: int
    updated: int
    unchanged: int
    skipped_paid: int
    debtors_changed: int
    pdfs_stored: int
    alerts: int
    created_at: datetime

    @classmethod
    def of(cls, record: ImportRecord) -> ImportRecordOut:
        return cls(
            import_id=record.import_id,
            source=record.source,
            checksum=record.checksum,
            encoding=record.encoding,
            created_at=record.created_at,
            **record.counts.__dict__,
        )


class ImportsOut(BaseModel):
    imports: list[ImportRecordOut]


class ImportRowDoc(BaseModel):
    """One invoice of a JSON import: the CSV's columns (docs/import-format.md)."""

    number: str = Field(examples=["2015-001-001078"])
    issued_on: str = Field(examples=["2015-09-02", "02/09/2015"])
    due_on: str | None = None
    amount: str | None = Field(default=None, examples=["25,00"], description="Euros; or amount_cents.")
    amount_cents: int | None = Field(default=None, examples=[2500])
    object: str
    regie: str = Field(description="A régie's code in the town.")
    debtor_reference: str
    debtor_name: str
    debtor_emails: list[str] | str | None = None
    payfip_reference: str | None = Field(default=None, description="Derived from the number when absent.")
    payfip_year: int | str | None = Field(default=None, description="The year of issued_on when absent.")


class ImportJsonDoc(BaseModel):
    invoices: list[ImportRowDoc]


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` written in place, for media types described by hand."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


CSV_BODY_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "UTF-8 CSV (BOM allowed; Windows-1252 accepted), `;`-separated, header: "
    + ";".join(COLUMNS),
}
