"""Which e-mails each event asks for, to whom, and with what to say: pure, no I/O.

Each builder turns one event (and the town it belongs to) into zero or more `EmailSpec`s; the purpose
names the templates (`templates/<purpose>.subject.txt`, `.txt`, `.html`) and, with the event id, makes
the e-mail unique.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts import EventPayload, events
from shared.contracts.values import format_date, format_datetime, format_euros


@dataclass(frozen=True)
class TownContact:
    town_id: uuid.UUID
    name: str
    public_url: str
    contact_email: str
    logo_url: str | None = None


@dataclass(frozen=True)
class EmailSpec:
    purpose: str
    to: str
    context: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    # Holds a one-time link: its body is blanked once sent.
    sensitive: bool = False


def _expiry(value: datetime | None) -> str:
    return format_datetime(value) if value else ""


def _activation(event: events.ActivationRequested, town: TownContact) -> list[EmailSpec]:
    if event.outcome == "link":
        return [
            EmailSpec(
                "activation_link",
                event.email,
                {"link_url": event.link_url, "expires": _expiry(event.expires_at)},
                sensitive=True,
            )
        ]
    return [EmailSpec(f"activation_{event.outcome}", event.email)]


def _reset(event: events.PasswordResetRequested, town: TownContact) -> list[EmailSpec]:
    if event.outcome == "link":
        return [
            EmailSpec(
                "reset_link",
                event.email,
                {"link_url": event.link_url, "expires": _expiry(event.expires_at)},
                sensitive=True,
            )
        ]
    return [EmailSpec("reset_unknown_address", event.email)]


def _email_change(event: events.EmailChangeRequested, town: TownContact) -> list[EmailSpec]:
    return [
        EmailSpec(
            "email_change_link",
            event.new_email,
            {
                "link_url": event.link_url,
                "expires": _expiry(event.expires_at),
                "current_email": event.current_email,
            },
            sensitive=True,
        )
    ]


def _email_changed(event: events.EmailChanged, town: TownContact) -> list[EmailSpec]:
    return [EmailSpec("email_changed_notice", event.old_email, {"new_email": event.new_email})]


def _password_changed(event: events.PasswordChanged, town: TownContact) -> list[EmailSpec]:
    return [EmailSpec("password_changed_notice", event.email, {"reason": event.reason})]


def _invoice_lines(items: list[events.InvoiceSummary]) -> list[dict[str, str]]:
    return [
        {
            "number": i.number,
            "object": i.object,
            "amount": format_euros(i.amount_cents),
            "issued_on": format_date(i.issued_on),
            "due_on": format_date(i.due_on),
        }
        for i in items
    ]


def _new_invoices(event: events.ResidentInvoicesPublished, town: TownContact) -> list[EmailSpec]:
    return [
        EmailSpec(
            "new_invoices_alert",
            event.email,
            {
                "invoices": _invoice_lines(event.invoices),
                "count": len(event.invoices),
                "total": format_euros(sum(i.amount_cents for i in event.invoices)),
            },
        )
    ]


def _contact(event: events.ContactMessageReceived, town: TownContact) -> list[EmailSpec]:
    context = {"resident_email": event.resident_email, "subject": event.subject, "body": event.body}
    return [
        EmailSpec("contact_to_office", event.office_email, context, reply_to=event.resident_email),
        EmailSpec("contact_acknowledgement", event.resident_email, context),
    ]


def _declaration_answered(event: events.DeclarationAnswered, town: TownContact) -> list[EmailSpec]:
    if not event.email:
        return []
    return [
        EmailSpec(
            "declaration_answered",
            event.email,
            {"number": event.number, "accepted": event.accepted, "comment": event.comment},
        )
    ]


def _receipt(event: events.PaymentSucceeded, town: TownContact) -> list[EmailSpec]:
    return [
        EmailSpec(
            "payment_receipt",
            event.email,
            {
                "amount": format_euros(event.amount_cents),
                "paid_at": format_datetime(event.paid_at),
                "authorisation_number": event.authorisation_number or "",
                "reference": event.reference,
                "method": "carte bancaire" if event.result_code == "P" else "prélèvement SEPA",
                "items": [{"number": i.number, "amount": format_euros(i.amount_cents)} for i in event.items],
            },
        )
    ]


Builder = Callable[[Any, TownContact], list[EmailSpec]]

BUILDERS: dict[type[EventPayload], Builder] = {
    events.ActivationRequested: _activation,
    events.PasswordResetRequested: _reset,
    events.EmailChangeRequested: _email_change,
    events.EmailChanged: _email_changed,
    events.PasswordChanged: _password_changed,
    events.ResidentInvoicesPublished: _new_invoices,
    events.ContactMessageReceived: _contact,
    events.DeclarationAnswered: _declaration_answered,
    events.PaymentSucceeded: _receipt,
}


def emails_for(event: EventPayload, town: TownContact) -> list[EmailSpec]:
    return BUILDERS[type(event)](event, town)


def retry_delay_seconds(attempts: int, *, base: float, ceiling: float) -> float:
    """5 s, 10 s, 20 s… up to the ceiling: temporary SMTP failures are retried with backoff."""
    return float(min(base * (2 ** max(attempts - 1, 0)), ceiling))
