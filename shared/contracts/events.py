"""Every event payload the services exchange, version by version.

Rules (see docs/events.md): names are past-tense facts scoped by their producer; within a version only
optional fields may be added; a breaking change is a new class with `event_version = 2` published beside
the old one until every consumer has moved. Amounts are integer cents; datetimes are aware UTC; e-mail
addresses are lower-cased by the producer.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.contracts.envelope import EventPayload

PayfipMode = Literal["T", "X", "W"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- invoices ------------------------------------------------------------------------------------


class TownRegie(_Part):
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str = Field(pattern=r"^\d{6}$")
    payfip_mode: PayfipMode
    online_payment_enabled: bool
    grouped_payment_allowed: bool


class TownConfigured(EventPayload):
    """A town (tenant) was created or its settings changed; carries the whole current state."""

    event_type = "invoices.town_configured"
    event_version = 1

    town_id: uuid.UUID
    slug: str
    name: str
    public_url: str
    hosts: list[str]
    contact_email: str
    logo_url: str | None = None
    alerts_enabled: bool
    password_min_length: int = Field(ge=1, le=64)
    regies: list[TownRegie] = Field(default_factory=list)


class DebtorUpserted(EventPayload):
    """The billing office created or changed a debtor; `emails` is the full current set."""

    event_type = "invoices.debtor_upserted"
    event_version = 1

    town_id: uuid.UUID
    debtor_id: uuid.UUID
    reference: str
    name: str
    emails: list[str]


class InvoicePublished(EventPayload):
    """One new invoice. Defined but not published yet: no service needs one event per invoice (alerts use
    `ResidentInvoicesPublished`), and the bus refuses messages nobody is bound to, so an import of 100 000
    invoices would leave 100 000 unroutable rows in the outbox. Publish it when a consumer binds it."""

    event_type = "invoices.invoice_published"
    event_version = 1

    town_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    debtor_id: uuid.UUID
    regie_id: uuid.UUID
    amount_cents: int = Field(ge=0)
    issued_on: date
    due_on: date | None = None
    object: str
    import_id: uuid.UUID | None = None


class InvoiceSummary(_Part):
    invoice_id: uuid.UUID
    number: str
    amount_cents: int
    issued_on: date
    due_on: date | None = None
    object: str


class ResidentInvoicesPublished(EventPayload):
    """One import brought new invoices for a resident who wants alerts: one e-mail lists them all."""

    event_type = "invoices.resident_invoices_published"
    event_version = 1

    town_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    import_id: uuid.UUID
    invoices: list[InvoiceSummary]


class InvoiceSettled(EventPayload):
    event_type = "invoices.invoice_settled"
    event_version = 1

    town_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    settlement: Literal["paid_online", "paid_elsewhere"]
    payment_id: uuid.UUID | None = None


class InvoiceCancelled(EventPayload):
    event_type = "invoices.invoice_cancelled"
    event_version = 1

    town_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    reason: str


class PaymentDeclared(EventPayload):
    """A resident said they paid by other means: the invoice is no longer payable online."""

    event_type = "invoices.payment_declared"
    event_version = 1

    town_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    account_id: uuid.UUID
    method: Literal["cheque", "cash", "transfer", "other"]
    paid_on: date


class DeclarationAnswered(EventPayload):
    """The billing office confirmed or rejected a resident's declaration."""

    event_type = "invoices.declaration_answered"
    event_version = 1

    town_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    account_id: uuid.UUID
    email: str | None = None
    accepted: bool
    comment: str = ""


class ContactMessageReceived(EventPayload):
    event_type = "invoices.contact_message_received"
    event_version = 1

    town_id: uuid.UUID
    message_id: uuid.UUID
    account_id: uuid.UUID
    resident_email: str
    subject: str
    body: str
    office_email: str


# --- auth ----------------------------------------------------------------------------------------


class ActivationRequested(EventPayload):
    """Someone asked to activate an account. `link_url` is set only when outcome is `link`."""

    event_type = "auth.activation_requested"
    event_version = 1

    town_id: uuid.UUID
    email: str
    outcome: Literal["link", "unknown_address", "already_active"]
    link_url: str | None = None
    expires_at: AwareDatetime | None = None


class PasswordResetRequested(EventPayload):
    event_type = "auth.password_reset_requested"
    event_version = 1

    town_id: uuid.UUID
    email: str
    outcome: Literal["link", "unknown_address"]
    link_url: str | None = None
    expires_at: AwareDatetime | None = None


class EmailChangeRequested(EventPayload):
    event_type = "auth.email_change_requested"
    event_version = 1

    town_id: uuid.UUID
    account_id: uuid.UUID
    current_email: str
    new_email: str
    link_url: str
    expires_at: AwareDatetime


class AccountActivated(EventPayload):
    event_type = "auth.account_activated"
    event_version = 1

    town_id: uuid.UUID
    account_id: uuid.UUID
    email: str


class EmailChanged(EventPayload):
    event_type = "auth.email_changed"
    event_version = 1

    town_id: uuid.UUID
    account_id: uuid.UUID
    old_email: str
    new_email: str


class PasswordChanged(EventPayload):
    event_type = "auth.password_changed"
    event_version = 1

    town_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    reason: Literal["changed", "reset"]


# --- payments ------------------------------------------------------------------------------------


class PaidItem(_Part):
    invoice_id: uuid.UUID
    number: str
    amount_cents: int = Field(ge=0)


class PaymentSucceeded(EventPayload):
    """PayFiP confirmed (detail call, never the browser) that a payment went through."""

    event_type = "payments.payment_succeeded"
    event_version = 1

    town_id: uuid.UUID
    payment_id: uuid.UUID
    account_id: uuid.UUID
    email: str
    regie_id: uuid.UUID
    reference: str
    amount_cents: int = Field(ge=0)
    items: list[PaidItem]
    authorisation_number: str | None = None
    result_code: Literal["P", "V"]
    paid_at: datetime


EVENT_TYPES: tuple[type[EventPayload], ...] = (
    TownConfigured,
    DebtorUpserted,
    InvoicePublished,
    ResidentInvoicesPublished,
    InvoiceSettled,
    InvoiceCancelled,
    PaymentDeclared,
    DeclarationAnswered,
    ContactMessageReceived,
    ActivationRequested,
    PasswordResetRequested,
    EmailChangeRequested,
    AccountActivated,
    EmailChanged,
    PasswordChanged,
    PaymentSucceeded,
)
