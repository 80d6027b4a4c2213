"""PayFiP functional error codes and the libellés the simulator answers with."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    """The exception class names PayFiP puts in `faultstring` and as the detail element."""

    FONCTIONNELLE = "FonctionnelleErreur"
    TECH_DYSFONCTIONNEMENT = "TechDysfonctionnementErreur"
    TECH_INDISPONIBILITE = "TechIndisponibiliteErreur"
    TECH_PROTOCOLAIRE = "TechProtocolaireErreur"


# Libellés of A2, R3, P1 and P5 are the ones seen in real replies. The others were only reported
# once, without their wording: these are the simulator's own, so a client must key on the code.
LIBELLES: dict[str, str] = {
    "A1": "Adresse mél absente.",
    "A2": "Adresse mél incorrecte.",
    "D1": "Le format du paramètre URLREDIRECT n'est pas conforme",
    "M1": "Le format du paramètre MONTANT n'est pas conforme",
    "M3": "Le montant est inférieur au montant minimum autorisé",
    "M5": "Le montant est supérieur au montant maximum autorisé",
    "N1": "Le format du paramètre URLNOTIF n'est pas conforme",
    "P1": "IdOp incorrect.",
    "P3": "IdOp déjà utilisé.",
    "P4": "IdOp expiré.",
    "P5": "Résultat de la transaction non connu.",
    "R3": "Le format du paramètre REFDET n'est pas conforme",
    "S1": "Le format du paramètre SAISIE n'est pas conforme",
    "T1": "Le format du paramètre NUMCLI n'est pas conforme",
    "T2": "Client inconnu.",
}

# Codes seen in real replies carry severity 2; the simulator uses it for every code.
DEFAULT_SEVERITE = 2


# Not frozen: Python code (pytest, contextlib) may set `__traceback__` on exceptions.
@dataclass(eq=False)
class PayFipError(Exception):
    """A functional error the real service reports as a SOAP fault (HTTP 500)."""

    code: str
    libelle: str
    descriptif: str = ""
    message: str | None = None
    severite: int = DEFAULT_SEVERITE
    error_type: ErrorType = ErrorType.FONCTIONNELLE

    def __str__(self) -> str:
        return f"{self.code} {self.libelle}"


def payfip_error(code: str, *, message: str | None = None) -> PayFipError:
    """The error for `code` with its libellé (a generic one for codes the simulator does not know)."""
    return PayFipError(
        code=code,
        libelle=LIBELLES.get(code, "Erreur simulée."),
        message=message,
    )
