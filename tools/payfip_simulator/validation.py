"""Checks of `creerPaiementSecurise` fields, as the real service does them.

Fields are checked in their XSD order (exer, mel, montant, numcli, objet, refdet, saisie, urlnotif,
urlredirect) and the first failure is the fault answered: the real service's order is not known, so a
client must not depend on which of two faults comes first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import payfip_error

MONTANT_MINIMUM_CENTS = 100
MONTANT_MAXIMUM_CENTS = 10_000_000
MEL_MIN_LENGTH = 6
MEL_MAX_LENGTH = 80
OBJET_MAX_LENGTH = 100

_DIGITS = re.compile(r"^[0-9]+$")
_NUMCLI = re.compile(r"^[0-9]{6}$")
_REFDET = re.compile(r"^[A-Za-z0-9]{6,30}$")
_EXER = re.compile(r"^[0-9]{4}$")
_OBJET_ALLOWED = re.compile(r"^[A-Za-z0-9 ]*$")
# Deliberately simple: one @, no spaces, a dot in the domain. The real rule is unknown.
_MEL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

VALID_SAISIE = ("T", "X", "W")

CREATION_FIELDS = (
    "exer",
    "mel",
    "montant",
    "numcli",
    "objet",
    "refdet",
    "saisie",
    "urlnotif",
    "urlredirect",
)


@dataclass(frozen=True)
class PaymentRequest:
    """The accepted fields of one `creerPaiementSecurise` call, as received (strings)."""

    exer: str | None
    mel: str
    montant: str
    numcli: str
    objet: str | None
    refdet: str
    saisie: str
    urlnotif: str
    urlredirect: str

    @property
    def montant_cents(self) -> int:
        return int(self.montant)


def _is_absolute_http_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def validate_creation(fields: Mapping[str, str | None], known_clients: Collection[str]) -> PaymentRequest:
    """Return the accepted request or raise the `PayFipError` the real service would answer."""
    mel = fields.get("mel")
    if not mel:
        raise payfip_error("A1")
    if not MEL_MIN_LENGTH <= len(mel) <= MEL_MAX_LENGTH or not _MEL.fullmatch(mel):
        raise payfip_error("A2")

    montant = fields.get("montant")
    if not montant or not _DIGITS.fullmatch(montant):
        raise payfip_error("M1")
    if int(montant) < MONTANT_MINIMUM_CENTS:
        raise payfip_error("M3")
    if int(montant) > MONTANT_MAXIMUM_CENTS:
        raise payfip_error("M5")

    numcli = fields.get("numcli")
    if not numcli or not _NUMCLI.fullmatch(numcli):
        raise payfip_error("T1")
    if numcli not in known_clients:
        raise payfip_error("T2")

    refdet = fields.get("refdet")
    if not refdet or not _REFDET.fullmatch(refdet):
        raise payfip_error("R3")

    saisie = fields.get("saisie")
    if saisie not in VALID_SAISIE:
        raise payfip_error("S1")

    urlnotif = fields.get("urlnotif")
    if urlnotif is None or not _is_absolute_http_url(urlnotif):
        raise payfip_error("N1")

    urlredirect = fields.get("urlredirect")
    if urlredirect is None or not _is_absolute_http_url(urlredirect):
        raise payfip_error("D1")

    return PaymentRequest(
        exer=fields.get("exer") or None,
        mel=mel,
        montant=montant,
        numcli=numcli,
        objet=fields.get("objet") or None,
        refdet=refdet,
        saisie=saisie,
        urlnotif=urlnotif,
        urlredirect=urlredirect,
    )


def creation_warnings(fields: Mapping[str, str | None]) -> list[str]:
    """Departures from the documented field rules that the real service is not known to refuse.

    They are not faults, but the control API shows them so a test can catch a client that, for
    example, forgot to clean `objet`.
    """
    warnings: list[str] = []
    exer = fields.get("exer")
    if exer is None:
        warnings.append("exer absent")
    elif not _EXER.fullmatch(exer):
        warnings.append("exer is not a 4-digit year")
    objet = fields.get("objet")
    if objet:
        if not _OBJET_ALLOWED.fullmatch(objet):
            warnings.append("objet has characters outside [A-Za-z0-9 ]")
        if len(objet) > OBJET_MAX_LENGTH:
            warnings.append(f"objet longer than {OBJET_MAX_LENGTH} characters")
        if "  " in objet or objet != objet.strip():
            warnings.append("objet has runs of spaces or leading/trailing spaces")
    montant = fields.get("montant")
    if montant and _DIGITS.fullmatch(montant) and montant.startswith("0"):
        warnings.append("montant has leading zeros")
    return warnings
