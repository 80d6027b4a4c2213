"""Use cases of the invoices service: one verb each, coordinating the domain and the repositories."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from services.invoices.domain import (
    INCIDENT_MESSAGES,
    REASON_MESSAGES,
    Account,
    AccountNotFound,
    ContactMessage,
    Debtor,
    Declaration,
    DeclarationAlreadyAnswered,
    DeclarationNotFound,
    InvalidCancellation,
    InvalidTownSettings,
    Invoice,
    InvoiceActionRefused,
    InvoiceNotFound,
    PdfUnavailable,
    TooManyMessages,
    Town,
    TownNotFound,
    declaration_verdict,
    online_payment_outcome,
    validated_contact_message,
    validated_debtor,
    validated_declaration_comment,
    validated_paid_on,
    validated_town,
)
from services.invoices.import_format import ParsedImport
from services.invoices.pdf import InvoiceDocument, render_invoice_pdf
from services.invoices.repository import ImportCounts, InvoicesUnitOfWork
from shared.contracts import Envelope, events
from shared.contracts.values import InvalidEmail, normalise_email
from shared.plumbing.inbox import PermanentFailure
from shared.plumbing.logging import get_logger

log = get_logger(__name__)


def town_configured_event(town: Town) -> events.TownConfigured:
    return events.TownConfigured(
        town_id=town.town_id,
        slug=town.slug,
        name=town.name,
        public_url=town.public_url,
        hosts=list(town.hosts),
        contact_email=town.contact_email,
        logo_url=town.logo_url,
        alerts_enabled=town.alerts_enabled,
        password_min_length=town.password_min_length,
        regies=[
            events.TownRegie(
                regie_id=r.regie_id,
                code=r.code,
                name=r.name,
                payfip_client_number=r.payfip_client_number,
                payfip_mode=r.payfip_mode,
                online_payment_enabled=r.online_payment_enabled,
                grouped_payment_allowed=r.grouped_payment_allowed,
            )
            for r in town.regies
        ],
    )


async def configure_town(town: Town, *, uow: InvoicesUnitOfWork) -> Town:
    """Create or update a town by its slug, keeping its id and its régies' ids; tell the other services."""
    town = validated_town(town)
    existing = await uow.towns.by_slug(town.slug)
    if existing is not None:
        regies = tuple(
            replace(r, regie_id=old.regie_id) if (old := existing.regie(r.code)) else r for r in town.regies
        )
        # Régies are never removed (invoices point at them): the ones not given are kept as they were.
        kept = tuple(r for r in existing.regies if town.regie(r.code) is None)
        town = replace(town, town_id=existing.town_id, regies=regies + kept)
    for host in town.hosts:
        owner = await uow.towns.host_owner(host)
        if owner is not None and owner != town.town_id:
            raise InvalidTownSettings(f"Le nom d'hôte {host} appartient déjà à une autre commune.")
    await uow.towns.save(town)
    saved = await uow.towns.by_id(town.town_id)
    assert saved is not None
    await uow.publish(town_configured_event(saved))
    return saved


async def create_api_key(slug: str, label: str, *, uow: InvoicesUnitOfWork) -> tuple[uuid.UUID, str]:
    """A new key for a town's billing office; the raw key is returned once and never stored."""
    town = await uow.towns.by_slug(slug)
    if town is None:
        raise TownNotFound(f"Commune inconnue : {slug}")
    raw_key = "pf_" + secrets.token_urlsafe(32)
    key_id = await uow.api_keys.add(town.town_id, raw_key, label)
    return key_id, raw_key


async def upsert_debtor(debtor: Debtor, *, uow: InvoicesUnitOfWork) -> Debtor:
    """Create or update a debtor by its reference; publish the full set of its e-mail addresses."""
    debtor = validated_debtor(debtor)
    await uow.imports.lock_town(debtor.town_id)  # see _record_account_email
    existing = await uow.debtors.by_reference(debtor.town_id, debtor.reference)
    if existing is not None:
        if existing.name == debtor.name and existing.emails == debtor.emails:
            return existing  # nothing changed: no event, so re-sending the same data is a no-op
        debtor = replace(debtor, debtor_id=existing.debtor_id)
    await uow.debtors.save(debtor)
    await uow.debtors.relink_accounts(debtor.town_id, [debtor.debtor_id])
    await uow.publish(
        events.DebtorUpserted(
            town_id=debtor.town_id,
            debtor_id=debtor.debtor_id,
            reference=debtor.reference,
            name=debtor.name,
            emails=list(debtor.emails),
        )
    )
    return debtor


# --- imports ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportSummary:
    import_id: uuid.UUID
    source: str
    checksum: str
    encoding: str
    warnings: tuple[str, ...]
    counts: ImportCounts
    skipped_paid_numbers: tuple[str, ...]


async def import_invoices(
    town: Town, parsed: ParsedImport, *, source: str, checksum: str, uow: InvoicesUnitOfWork
) -> ImportSummary:
    """Write a checked file in one transaction: debtors, links to accounts, invoices, PDFs, events.

    Set-based from end to end (COPY into staging tables, one statement per table), so 100 000 rows cost
    a few statements, not 100 000 round trips. Re-importing the same file changes nothing and publishes
    nothing."""
    await uow.imports.lock_town(town.town_id)
    import_id = uuid.uuid4()
    await uow.imports.begin(import_id, town.town_id, source, checksum, parsed.encoding)
    regie_ids = {r.code: r.regie_id for r in town.regies}
    await uow.imports.stage(parsed.rows, parsed.debtors, regie_ids)
    changed_debtors = await uow.imports.upsert_debtors(town.town_id)
    # Before the invoices: a new debtor whose e-mail is already an account's alerts that resident now.
    # An address the office took off a debtor stops showing its invoices to the account it linked.
    await uow.debtors.relink_accounts(town.town_id, [d.debtor_id for d in changed_debtors])
    upserted = await uow.imports.upsert_invoices(town.town_id, import_id)
    await uow.pdfs.forget_generated(upserted.updated_ids)
    pdfs_stored = await uow.imports.store_office_pdfs(town.town_id, dict(parsed.pdfs))

    alerts: list[events.ResidentInvoicesPublished] = []
    if town.alerts_enabled:
        recipients = await uow.imports.alert_recipients(
            town.town_id, [r["invoice_id"] for r in upserted.created]
        )
        alerts = resident_alerts(town.town_id, import_id, recipients)
    await uow.publish_many(
        [
            *(
                events.DebtorUpserted(
                    town_id=town.town_id,
                    debtor_id=d.debtor_id,
                    reference=d.reference,
                    name=d.name,
                    emails=list(d.emails),
                )
                for d in changed_debtors
            ),
            *alerts,
        ]
    )
    rows = len(parsed.rows)
    updated = len(upserted.updated_ids)
    skipped = len(upserted.skipped_paid_numbers)
    counts = ImportCounts(
        rows=rows,
        created=len(upserted.created),
        updated=updated,
        unchanged=rows - len(upserted.created) - updated - skipped,
        skipped_paid=skipped,
        debtors_changed=len(changed_debtors),
        pdfs_stored=pdfs_stored,
        alerts=len(alerts),
    )
    await uow.imports.finish(import_id, counts)
    log.info(
        "invoices_imported",
        import_id=str(import_id),
        town_id=str(town.town_id),
        source=source,
        **counts.__dict__,
    )
    return ImportSummary(
        import_id=import_id,
        source=source,
        checksum=checksum,
        encoding=parsed.encoding,
        warnings=parsed.warnings,
        counts=counts,
        skipped_paid_numbers=tuple(upserted.skipped_paid_numbers),
    )


def resident_alerts(
    town_id: uuid.UUID, import_id: uuid.UUID, recipients: Sequence[Mapping[str, Any]]
) -> list[events.ResidentInvoicesPublished]:
    """One event per account listing all of its new invoices: one e-mail per import, not per invoice."""
    by_account: dict[uuid.UUID, tuple[str, list[events.InvoiceSummary]]] = {}
    for row in recipients:
        _, items = by_account.setdefault(row["account_id"], (row["email"], []))
        items.append(
            events.InvoiceSummary(
                invoice_id=row["invoice_id"],
                number=row["number"],
                amount_cents=row["amount_cents"],
                issued_on=row["issued_on"],
                due_on=row["due_on"],
                object=row["object"],
            )
        )
    return [
        events.ResidentInvoicesPublished(
            town_id=town_id, account_id=account_id, email=email, import_id=import_id, invoices=items
        )
        for account_id, (email, items) in by_account.items()
    ]


# --- PDFs ------------------------------------------------------------------------------------------


async def store_office_pdf(
    town_id: uuid.UUID, number: str, content: bytes, *, uow: InvoicesUnitOfWork
) -> bool:
    """The office's own PDF for one invoice; it replaces a generated one. True if something changed."""
    invoice = await uow.invoices.by_number(town_id, number)
    if invoice is None:
        raise InvoiceNotFound(f"Aucune facture {number} dans cette commune.")
    return await uow.pdfs.store(town_id, invoice.invoice_id, content, source="office")


def invoice_document(town: Town, invoice: Invoice) -> InvoiceDocument:
    return InvoiceDocument(
        town_name=town.name,
        town_url=town.public_url,
        contact_email=town.contact_email,
        regie_name=invoice.regie.name,
        payfip_client_number=invoice.regie.payfip_client_number,
        number=invoice.number,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        amount_cents=invoice.amount_cents,
        object=invoice.object,
        debtor_name=invoice.debtor_name,
        debtor_reference=invoice.debtor_reference,
        payfip_reference=invoice.payfip_reference,
        payfip_year=invoice.payfip_year,
    )


async def invoice_pdf(
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    can_generate: bool,
    uow: InvoicesUnitOfWork,
) -> tuple[Invoice, bytes]:
    """A resident's invoice PDF: the office's, or the one drawn at the first download and kept (drawing
    100 000 PDFs at import would cost minutes for documents most residents never open)."""
    invoice = await uow.invoices.of_account_by_id(town_id, account_id, invoice_id)
    if invoice is None:
        raise InvoiceNotFound("Facture introuvable.")
    content = await uow.pdfs.content(invoice.invoice_id)
    if content is not None:
        return invoice, content
    if not can_generate:
        raise PdfUnavailable(REASON_MESSAGES["no_pdf"])
    town = await uow.towns.by_id(town_id)
    assert town is not None  # the invoice belongs to it
    content = await asyncio.to_thread(render_invoice_pdf, invoice_document(town, invoice))
    await uow.pdfs.store(town_id, invoice.invoice_id, content, source="generated")
    log.info("invoice_pdf_generated", invoice_id=str(invoice.invoice_id), size=len(content))
    return invoice, content


# --- residents ---------------------------------------------------------------------------------------


async def record_account_activation(
    event: events.AccountActivated, envelope: Envelope, uow: InvoicesUnitOfWork
) -> None:
    """A resident activated their account: remember it and link the debtors the office knows by its
    e-mail (the resident proved owning that address by following the activation link)."""
    await _record_account_email(event.town_id, event.account_id, event.email, envelope, uow)


async def record_email_change(
    event: events.EmailChanged, envelope: Envelope, uow: InvoicesUnitOfWork
) -> None:
    """The login e-mail changed: alerts go to the new one; existing links stay, and debtors known by the
    new address (proved by the confirmation link) are linked too."""
    await _record_account_email(event.town_id, event.account_id, event.new_email, envelope, uow)


async def _record_account_email(
    town_id: uuid.UUID, account_id: uuid.UUID, email: str, envelope: Envelope, uow: InvoicesUnitOfWork
) -> None:
    if await uow.towns.by_id(town_id) is None:
        raise PermanentFailure(f"unknown town {town_id}")
    try:
        email = normalise_email(email)
    except InvalidEmail:
        raise PermanentFailure("the account's e-mail is not an address") from None
    # Serialised with the town's imports and debtor changes: otherwise an import committing at the same
    # moment would link its new debtors to no account, and this activation would not see them either.
    await uow.imports.lock_town(town_id)
    await uow.accounts.record_email(town_id, account_id, email, as_of=envelope.occurred_at)
    if await uow.accounts.get(town_id, account_id) is None:
        raise PermanentFailure(f"account {account_id} belongs to another town")
    linked = await uow.accounts.link_debtors_with_email(town_id, account_id, email)
    log.info("account_recorded", account_id=str(account_id), debtors_linked=linked)


async def declare_payment(
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    invoice_id: uuid.UUID,
    *,
    method: str,
    paid_on: date,
    comment: str,
    today: date,
    uow: InvoicesUnitOfWork,
) -> tuple[Invoice, Declaration]:
    """«Marquer la facture comme réglée»: the invoice waits for the office's answer and can no longer be
    paid online (the payments service learns it from the event)."""
    paid_on = validated_paid_on(paid_on, today=today)
    comment = validated_declaration_comment(comment)
    invoice = await uow.invoices.of_account_by_id(town_id, account_id, invoice_id, lock=True)
    if invoice is None:
        raise InvoiceNotFound("Facture introuvable.")
    verdict = declaration_verdict(invoice.state)
    if not verdict.allowed:
        assert verdict.reason is not None
        raise InvoiceActionRefused(REASON_MESSAGES[verdict.reason], verdict.reason)
    declaration_id = await uow.declarations.add(town_id, invoice_id, account_id, method, paid_on, comment)
    await uow.invoices.set_state(invoice_id, "declared")
    await uow.publish(
        events.PaymentDeclared(
            town_id=town_id,
            invoice_id=invoice_id,
            number=invoice.number,
            account_id=account_id,
            method=method,
            paid_on=paid_on,
        )
    )
    declaration = await uow.declarations.get(town_id, declaration_id)
    refreshed = await uow.invoices.by_id(town_id, invoice_id)
    assert declaration is not None
    assert refreshed is not None
    return refreshed, declaration


async def send_contact_message(
    town_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    subject: str,
    body: str,
    now: datetime,
    per_hour: int,
    uow: InvoicesUnitOfWork,
) -> ContactMessage:
    """«Contact»: keep the message for the office, and have it e-mailed to the office with an
    acknowledgement to the resident (the notifier does both from the event)."""
    subject, body = validated_contact_message(subject, body)
    town = await uow.towns.by_id(town_id)
    # Locking the account serialises one resident's concurrent sends, so the limit cannot be raced.
    account = await uow.accounts.get(town_id, account_id, lock=True)
    if town is None or account is None:
        raise AccountNotFound("Compte inconnu.")
    window_start = now - timedelta(hours=1)
    if await uow.messages.count_since(account_id, window_start) >= per_hour:
        oldest = await uow.messages.oldest_since(account_id, window_start) or now
        raise TooManyMessages(
            f"Vous avez déjà envoyé {per_hour} messages dans l'heure : réessayez plus tard.",
            retry_after=max(1, int((oldest + timedelta(hours=1) - now).total_seconds()) + 1),
        )
    message = ContactMessage(
        message_id=uuid.uuid4(),
        town_id=town_id,
        account_id=account_id,
        resident_email=account.email,
        subject=subject,
        body=body,
        created_at=now,
    )
    await uow.messages.add(message)
    await uow.publish(
        events.ContactMessageReceived(
            town_id=town_id,
            message_id=message.message_id,
            account_id=account_id,
            resident_email=account.email,
            subject=subject,
            body=body,
            office_email=town.contact_email,
        )
    )
    return message


async def set_alert_preference(
    town_id: uuid.UUID, account_id: uuid.UUID, enabled: bool, *, uow: InvoicesUnitOfWork
) -> Account:
    if not await uow.accounts.set_alerts(town_id, account_id, enabled):
        raise AccountNotFound("Compte inconnu.")
    account = await uow.accounts.get(town_id, account_id)
    assert account is not None
    return account


# --- the office --------------------------------------------------------------------------------------


async def cancel_invoice(town_id: uuid.UUID, number: str, reason: str, *, uow: InvoicesUnitOfWork) -> Invoice:
    """Cancel an invoice still to pay. Cancelling it again is a no-op; a paid invoice cannot be."""
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InvalidCancellation("Le motif d'annulation est obligatoire (500 caractères au plus).")
    invoice = await uow.invoices.by_number(town_id, number, lock=True)
    if invoice is None:
        raise InvoiceNotFound(f"Aucune facture {number} dans cette commune.")
    if invoice.state == "cancelled":
        return invoice
    if invoice.is_paid:
        raise InvoiceActionRefused("Cette facture est réglée : elle ne peut plus être annulée.", "paid")
    await _close_pending_declaration(invoice, "superseded", "Facture annulée.", uow=uow)
    await uow.invoices.set_state(invoice.invoice_id, "cancelled", cancel_reason=reason)
    await uow.publish(
        events.InvoiceCancelled(
            town_id=town_id, invoice_id=invoice.invoice_id, number=invoice.number, reason=reason
        )
    )
    refreshed = await uow.invoices.by_id(town_id, invoice.invoice_id)
    assert refreshed is not None
    return refreshed


async def mark_paid_elsewhere(
    town_id: uuid.UUID, number: str, comment: str, *, now: datetime, uow: InvoicesUnitOfWork
) -> Invoice:
    """The office received the money by another channel. A pending declaration is thereby confirmed
    (and the resident told so). Marking it again is a no-op."""
    invoice = await uow.invoices.by_number(town_id, number, lock=True)
    if invoice is None:
        raise InvoiceNotFound(f"Aucune facture {number} dans cette commune.")
    if invoice.state == "paid_elsewhere":
        return invoice
    if invoice.state == "paid_online":
        raise InvoiceActionRefused("Cette facture est déjà réglée en ligne.", "paid")
    if invoice.state == "cancelled":
        raise InvoiceActionRefused("Cette facture est annulée.", "cancelled")
    await _close_pending_declaration(invoice, "confirmed", comment.strip()[:500], uow=uow)
    await _settle_elsewhere(invoice, now=now, uow=uow)
    refreshed = await uow.invoices.by_id(town_id, invoice.invoice_id)
    assert refreshed is not None
    return refreshed


async def _settle_elsewhere(invoice: Invoice, *, now: datetime, uow: InvoicesUnitOfWork) -> None:
    await uow.invoices.set_state(invoice.invoice_id, "paid_elsewhere", settled_at=now)
    await uow.publish(
        events.InvoiceSettled(
            town_id=invoice.town_id,
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            settlement="paid_elsewhere",
        )
    )


async def _close_pending_declaration(
    invoice: Invoice, state: str, comment: str, *, uow: InvoicesUnitOfWork
) -> None:
    """Settling or cancelling an invoice answers its pending declaration, if any; a confirmation is
    e-mailed to the resident (declaration_answered), a superseded one is not (the invoice's page says)."""
    pending = await uow.declarations.pending_of_invoice(invoice.invoice_id)
    if pending is None:
        return
    await uow.declarations.answer(pending.declaration_id, state, comment)
    if state == "confirmed":
        await uow.publish(
            events.DeclarationAnswered(
                town_id=invoice.town_id,
                invoice_id=invoice.invoice_id,
                number=invoice.number,
                account_id=pending.account_id,
                email=pending.account_email,
                accepted=True,
                comment=comment,
            )
        )


async def answer_declaration(
    town_id: uuid.UUID,
    declaration_id: uuid.UUID,
    *,
    accepted: bool,
    comment: str,
    now: datetime,
    uow: InvoicesUnitOfWork,
) -> Declaration:
    """The office confirms (the invoice is paid elsewhere) or rejects (it is to pay again) a declaration;
    the resident is e-mailed either way."""
    comment = validated_declaration_comment(comment)
    found = await uow.declarations.get(town_id, declaration_id)
    if found is None:
        raise DeclarationNotFound("Déclaration introuvable.")
    # The invoice first, then its declaration: the order every other use case locks them in.
    invoice = await uow.invoices.by_id(town_id, found.invoice_id, lock=True)
    declaration = await uow.declarations.get(town_id, declaration_id, lock=True)
    assert invoice is not None
    assert declaration is not None
    if declaration.state != "pending":
        raise DeclarationAlreadyAnswered("Cette déclaration a déjà reçu une réponse.")
    await uow.declarations.answer(declaration_id, "confirmed" if accepted else "rejected", comment)
    if accepted:
        await _settle_elsewhere(invoice, now=now, uow=uow)
    elif invoice.state == "declared":
        await uow.invoices.set_state(invoice.invoice_id, "unpaid")
    await uow.publish(
        events.DeclarationAnswered(
            town_id=town_id,
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            account_id=declaration.account_id,
            email=declaration.account_email,
            accepted=accepted,
            comment=comment,
        )
    )
    answered = await uow.declarations.get(town_id, declaration_id)
    assert answered is not None
    return answered


# --- online payments -----------------------------------------------------------------------------


async def mark_invoices_paid_online(
    event: events.PaymentSucceeded, envelope: Envelope, uow: InvoicesUnitOfWork
) -> None:
    """PayFiP confirmed a payment: each invoice it covers is paid online, exactly once. The money is
    always recorded for the reconciliation export; an invoice that was cancelled or already settled is
    not overwritten: the office gets an incident to sort out."""
    if await uow.towns.by_id(event.town_id) is None:
        raise PermanentFailure(f"unknown town {event.town_id}")
    for item in event.items:
        invoice = await uow.invoices.by_id(event.town_id, item.invoice_id, lock=True)
        details: dict[str, object] = {
            "number": item.number,
            "amount_cents": item.amount_cents,
            "authorisation_number": event.authorisation_number,
            "reference": event.reference,
            "paid_at": event.paid_at.isoformat(),
        }
        if invoice is None:
            await _incident(event, "unknown_invoice", None, details, uow=uow)
            continue
        first_time = await uow.settlements.record(
            town_id=event.town_id,
            invoice_id=invoice.invoice_id,
            payment_id=event.payment_id,
            amount_cents=item.amount_cents,
            authorisation_number=event.authorisation_number,
            payfip_reference=invoice.payfip_reference,
            result_code=event.result_code,
            paid_at=event.paid_at,
        )
        if not first_time:
            continue  # this payment was already applied to this invoice (sent again under a new id)
        outcome = online_payment_outcome(invoice.state)
        if outcome != "settle":
            await _incident(event, outcome, invoice.invoice_id, details | {"state": invoice.state}, uow=uow)
            continue
        if item.amount_cents != invoice.amount_cents:
            await _incident(
                event,
                "amount_mismatch",
                invoice.invoice_id,
                details | {"invoice_amount_cents": invoice.amount_cents},
                uow=uow,
            )
        await _close_pending_declaration(invoice, "superseded", "Facture réglée en ligne.", uow=uow)
        await uow.invoices.set_state(invoice.invoice_id, "paid_online", settled_at=event.paid_at)
        await uow.publish(
            events.InvoiceSettled(
                town_id=event.town_id,
                invoice_id=invoice.invoice_id,
                number=invoice.number,
                settlement="paid_online",
                payment_id=event.payment_id,
            )
        )
        log.info("invoice_paid_online", invoice_id=str(invoice.invoice_id), payment_id=str(event.payment_id))


async def _incident(
    event: events.PaymentSucceeded,
    kind: str,
    invoice_id: uuid.UUID | None,
    details: dict[str, object],
    *,
    uow: InvoicesUnitOfWork,
) -> None:
    log.warning("payment_incident", kind=kind, payment_id=str(event.payment_id), invoice_id=str(invoice_id))
    await uow.incidents.add(
        event.town_id,
        kind,
        INCIDENT_MESSAGES[kind],
        invoice_id=invoice_id,
        payment_id=event.payment_id,
        details=details,
    )
