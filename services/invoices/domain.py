"""Towns, régies, debtors and invoices: rules and facts, no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from urllib.parse import urlsplit

from shared.contracts.values import InvalidEmail, normalise_email

PayfipMode = Literal["T", "X", "W"]

# Control characters other than line breaks and tabs: never in what a resident or an agent writes.
_CONTROL_EXCEPT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"[\r\n]")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class DomainError(Exception):
    """A rule of the billing domain was broken; `code` is stable, the message is French."""

    code = "domain_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTownSettings(DomainError):
    code = "invalid_town_settings"


class TownNotFound(DomainError):
    code = "town_not_found"


class InvalidDebtor(DomainError):
    code = "invalid_debtor"


def normalise_host(raw: str) -> str:
    """`Demo.Localhost:8000` and `demo.localhost` name the same town: hosts are kept without port."""
    host = raw.strip().lower().rstrip(".")
    if host.startswith("["):
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


@dataclass(frozen=True)
class Regie:
    code: str
    name: str
    payfip_client_number: str
    payfip_mode: PayfipMode
    online_payment_enabled: bool = True
    grouped_payment_allowed: bool = False
    regie_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class Town:
    slug: str
    name: str
    public_url: str
    hosts: tuple[str, ...]
    contact_email: str
    logo_url: str | None = None
    alerts_enabled: bool = True
    password_min_length: int = 8
    regies: tuple[Regie, ...] = ()
    town_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def regie(self, code: str) -> Regie | None:
        return next((r for r in self.regies if r.code == code), None)


def validated_town(town: Town) -> Town:
    """Check a town's settings as an operator typed them; return them normalised."""
    if not _SLUG.match(town.slug):
        raise InvalidTownSettings("Identifiant de commune invalide (minuscules, chiffres et tirets).")
    if not town.name.strip():
        raise InvalidTownSettings("Le nom de la commune est obligatoire.")
    public = urlsplit(town.public_url)
    if public.scheme not in ("http", "https") or not public.hostname or public.path not in ("", "/"):
        raise InvalidTownSettings("L'adresse publique doit être une URL http(s) sans chemin.")
    hosts = tuple(sorted({normalise_host(h) for h in town.hosts} | {normalise_host(public.netloc)}))
    for host in hosts:
        if not _HOST.match(host):
            raise InvalidTownSettings(f"Nom d'hôte invalide : {host}")
    try:
        contact = normalise_email(town.contact_email)
    except InvalidEmail:
        raise InvalidTownSettings("Adresse de contact invalide.") from None
    if not 1 <= town.password_min_length <= 64:
        raise InvalidTownSettings("La longueur minimale du mot de passe doit être entre 1 et 64.")
    codes = [r.code for r in town.regies]
    if len(set(codes)) != len(codes):
        raise InvalidTownSettings("Deux régies ont le même code.")
    for regie in town.regies:
        if not re.fullmatch(r"\d{6}", regie.payfip_client_number):
            raise InvalidTownSettings(f"Régie {regie.code} : le numéro client PayFiP a 6 chiffres.")
        if regie.payfip_mode not in ("T", "X", "W"):
            raise InvalidTownSettings(f"Régie {regie.code} : mode PayFiP T, X ou W.")
    return Town(
        slug=town.slug,
        name=town.name.strip(),
        public_url=f"{public.scheme}://{public.netloc}",
        hosts=hosts,
        contact_email=contact,
        logo_url=town.logo_url,
        alerts_enabled=town.alerts_enabled,
        password_min_length=town.password_min_length,
        regies=town.regies,
        town_id=town.town_id,
    )


@dataclass(frozen=True)
class Debtor:
    town_id: uuid.UUID
    reference: str
    name: str
    emails: tuple[str, ...]
    debtor_id: uuid.UUID = field(default_factory=uuid.uuid4)


def validated_debtor(debtor: Debtor) -> Debtor:
    if not debtor.reference.strip() or len(debtor.reference) > 64:
        raise InvalidDebtor("Référence de redevable manquante ou trop longue.")
    emails = []
    for raw in debtor.emails:
        try:
            emails.append(normalise_email(raw))
        except InvalidEmail:
            raise InvalidDebtor(f"Adresse de messagerie invalide : {raw!r}") from None
    return Debtor(
        town_id=debtor.town_id,
        reference=debtor.reference.strip(),
        name=debtor.name.strip(),
        emails=tuple(sorted(set(emails))),
        debtor_id=debtor.debtor_id,
    )


# --- invoices ------------------------------------------------------------------------------------------

InvoiceState = Literal["unpaid", "paid_online", "paid_elsewhere", "declared", "cancelled"]
PAID_STATES: frozenset[str] = frozenset({"paid_online", "paid_elsewhere"})

# The state written in words on «Mes factures» (colour alone is not enough) and on the invoice's page.
STATE_LABELS: dict[str, str] = {
    "unpaid": "à régler",
    "paid_online": "réglée en ligne",
    "paid_elsewhere": "réglée",
    "declared": "paiement déclaré",
    "cancelled": "annulée",
}

# PayFiP's bounds for one payment (montant, in cents).
PAYFIP_MIN_CENTS = 100
PAYFIP_MAX_CENTS = 10_000_000

# Why an action does not apply to an invoice: stable codes for the gateway, French for the resident.
ActionReason = Literal["paid", "cancelled", "declared", "no_pdf", "amount_out_of_bounds", "regie_closed"]
REASON_MESSAGES: dict[str, str] = {
    "paid": "Cette facture est déjà réglée.",
    "cancelled": "Cette facture a été annulée par le service de facturation.",
    "declared": "Vous avez déclaré avoir réglé cette facture ; le service de facturation doit le confirmer.",
    "no_pdf": "Le service de facturation n'a pas fourni de document pour cette facture.",
    "amount_out_of_bounds": "Le paiement en ligne n'accepte que les montants de 1,00 € à 100 000,00 €.",
    "regie_closed": "Cette régie n'accepte pas le paiement en ligne.",
}


@dataclass(frozen=True)
class Verdict:
    """Whether an action applies to an invoice and, when it does not, why."""

    allowed: bool
    reason: ActionReason | None = None

    @property
    def message(self) -> str | None:
        return REASON_MESSAGES[self.reason] if self.reason else None


ALLOWED = Verdict(True)


def _settled_reason(state: str) -> ActionReason | None:
    if state in PAID_STATES:
        return "paid"
    if state == "cancelled":
        return "cancelled"
    if state == "declared":
        return "declared"
    return None


def online_payment_verdict(state: str, amount_cents: int, *, regie_online: bool) -> Verdict:
    """Can this invoice be paid through PayFiP now? (A payment in progress is the payments service's
    knowledge: the gateway adds that reason.)"""
    reason = _settled_reason(state)
    if reason is None and not regie_online:
        reason = "regie_closed"
    if reason is None and not PAYFIP_MIN_CENTS <= amount_cents <= PAYFIP_MAX_CENTS:
        reason = "amount_out_of_bounds"
    return Verdict(False, reason) if reason else ALLOWED


def declaration_verdict(state: str) -> Verdict:
    """«Marquer la facture comme réglée» applies to an invoice still to pay."""
    reason = _settled_reason(state)
    return Verdict(False, reason) if reason else ALLOWED


def download_verdict(*, has_pdf: bool, can_generate: bool) -> Verdict:
    return ALLOWED if has_pdf or can_generate else Verdict(False, "no_pdf")


def pdf_file_name(number: str) -> str:
    """`facture-2015-001-001078.pdf`; numbers are already restricted to letters, digits, `.`, `_`, `-`
    (import format), the substitution only guards against anything older."""
    return "facture-" + re.sub(r"[^A-Za-z0-9._-]", "_", number).strip(".") + ".pdf"


class InvoiceNotFound(DomainError):
    code = "invoice_not_found"


class AccountNotFound(DomainError):
    code = "account_not_found"


class InvoiceActionRefused(DomainError):
    """An action does not apply to the invoice in its current state; `reason` says why."""

    code = "invoice_action_refused"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidCancellation(DomainError):
    code = "invalid_reason"


class InvalidPdf(DomainError):
    code = "invalid_pdf"


class PdfUnavailable(DomainError):
    code = "no_pdf"


# --- declarations («Marquer la facture comme réglée») -------------------------------------------------

DeclarationMethod = Literal["cheque", "cash", "transfer", "other"]
METHOD_LABELS: dict[str, str] = {
    "cheque": "chèque",
    "cash": "espèces",
    "transfer": "virement",
    "other": "autre moyen",
}
DECLARATION_COMMENT_MAX = 500


class InvalidDeclaration(DomainError):
    code = "invalid_declaration"


class DeclarationNotFound(DomainError):
    code = "declaration_not_found"


class DeclarationAlreadyAnswered(DomainError):
    code = "declaration_already_answered"


def validated_declaration_comment(comment: str) -> str:
    cleaned = comment.strip()
    if len(cleaned) > DECLARATION_COMMENT_MAX:
        raise InvalidDeclaration(f"Le commentaire dépasse {DECLARATION_COMMENT_MAX} caractères.")
    if _CONTROL_EXCEPT_LINES.search(cleaned):
        raise InvalidDeclaration("Le commentaire contient des caractères invalides.")
    return cleaned


def validated_paid_on(paid_on: date, *, today: date) -> date:
    """The day the resident paid: not in the future (Paris time), not before 2000."""
    if paid_on > today:
        raise InvalidDeclaration("La date de paiement ne peut pas être dans le futur.")
    if paid_on.year < 2000:
        raise InvalidDeclaration("La date de paiement est trop ancienne.")
    return paid_on


# --- contact messages («Contact») --------------------------------------------------------------------

CONTACT_SUBJECT_MAX = 150
CONTACT_BODY_MAX = 5000


class InvalidContactMessage(DomainError):
    code = "invalid_message"


class TooManyMessages(DomainError):
    code = "too_many_messages"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def validated_contact_message(subject: str, body: str) -> tuple[str, str]:
    """A subject on one line (it becomes an e-mail's subject) and a body, both within their lengths."""
    subject = subject.strip()
    body = body.strip().replace("\r\n", "\n")
    if not subject:
        raise InvalidContactMessage("L'objet du message est obligatoire.")
    if not body:
        raise InvalidContactMessage("Le message est vide.")
    if len(subject) > CONTACT_SUBJECT_MAX:
        raise InvalidContactMessage(f"L'objet dépasse {CONTACT_SUBJECT_MAX} caractères.")
    if len(body) > CONTACT_BODY_MAX:
        raise InvalidContactMessage(f"Le message dépasse {CONTACT_BODY_MAX} caractères.")
    if _LINE_BREAKS.search(subject) or _CONTROL_EXCEPT_LINES.search(subject):
        raise InvalidContactMessage("L'objet doit tenir sur une ligne.")
    if _CONTROL_EXCEPT_LINES.search(body):
        raise InvalidContactMessage("Le message contient des caractères invalides.")
    return subject, body


# --- online payments (payments.payment_succeeded) ----------------------------------------------------

IncidentKind = Literal[
    "unknown_invoice",
    "paid_twice_online",
    "paid_online_after_paid_elsewhere",
    "paid_online_after_cancellation",
    "amount_mismatch",
]
INCIDENT_MESSAGES: dict[str, str] = {
    "unknown_invoice": "Paiement en ligne reçu pour une facture inconnue de cette commune.",
    "paid_twice_online": "Facture déjà réglée en ligne par un autre paiement : elle a été payée deux fois.",
    "paid_online_after_paid_elsewhere": "Paiement en ligne reçu pour une facture déjà marquée réglée"
    " par un autre moyen : à rembourser ou à affecter.",
    "paid_online_after_cancellation": "Paiement en ligne reçu pour une facture annulée : à rembourser"
    " ou à affecter.",
    "amount_mismatch": "Le montant payé en ligne diffère du montant actuel de la facture.",
}


def online_payment_outcome(state: str) -> Literal["settle"] | IncidentKind:
    """What a confirmed online payment does to an invoice: it settles an invoice still to pay (or only
    declared paid); it never silently overwrites a cancelled or already settled one."""
    if state in ("unpaid", "declared"):
        return "settle"
    if state == "paid_online":
        return "paid_twice_online"
    if state == "paid_elsewhere":
        return "paid_online_after_paid_elsewhere"
    return "paid_online_after_cancellation"


# --- what the repositories read ----------------------------------------------------------------------


@dataclass(frozen=True)
class Invoice:
    invoice_id: uuid.UUID
    town_id: uuid.UUID
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    state: str
    payfip_reference: str
    payfip_year: int
    regie: Regie
    debtor_id: uuid.UUID
    debtor_reference: str
    debtor_name: str
    cancel_reason: str | None
    settled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # 'office' (supplied), 'generated' (drawn by the portal, kept), or None (not drawn yet).
    pdf_source: str | None

    @property
    def is_paid(self) -> bool:
        return self.state in PAID_STATES

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    town_id: uuid.UUID
    email: str
    alerts_enabled: bool


@dataclass(frozen=True)
class Declaration:
    declaration_id: uuid.UUID
    town_id: uuid.UUID
    invoice_id: uuid.UUID
    invoice_number: str
    account_id: uuid.UUID
    account_email: str | None
    method: str
    paid_on: date
    comment: str
    state: str
    answer_comment: str
    answered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ContactMessage:
    message_id: uuid.UUID
    town_id: uuid.UUID
    account_id: uuid.UUID
    resident_email: str
    subject: str
    body: str
    created_at: datetime


@dataclass(frozen=True)
class Incident:
    incident_id: uuid.UUID
    town_id: uuid.UUID
    kind: str
    invoice_id: uuid.UUID | None
    invoice_number: str | None
    payment_id: uuid.UUID | None
    message: str
    details: dict[str, object]
    created_at: datetime


@dataclass(frozen=True)
class SettlementLine:
    """One invoice paid online, as the reconciliation export lists it."""

    paid_at: datetime
    invoice_number: str
    amount_cents: int
    authorisation_number: str | None
    payfip_reference: str
    payfip_year: int
    regie_code: str
    payfip_client_number: str
    debtor_reference: str
    debtor_name: str
    payment_id: uuid.UUID
    result_code: str
    invoice_state: str


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int

    @property
    def count(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size
