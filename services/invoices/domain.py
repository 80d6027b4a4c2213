"""Towns, régies, debtors and invoices: rules and facts, no I/O."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from shared.contracts.values import InvalidEmail, normalise_email

PayfipMode = Literal["T", "X", "W"]

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
