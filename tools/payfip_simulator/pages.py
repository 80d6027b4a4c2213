"""`/tpa/paiementws.web`: the payment page the payer's browser is sent to, and its outcome buttons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import PayFipError
from .keys import LOGGER, OPERATIONS, SETTINGS, TEMPLATES
from .outcomes import record_outcome, redirect_url
from .state import Operation, ResultCode

PAGE_PATH = "/tpa/paiementws.web"
# The form value of «Quitter sans résultat»: no result, no notification, no redirect.
LEAVE_CHOICE = "quitter"


@dataclass(frozen=True)
class OutcomeButton:
    choice: str
    label: str
    style: str


OUTCOME_BUTTONS = (
    OutcomeButton(ResultCode.PAID_BY_CARD.value, "Payer par carte", "pay"),
    OutcomeButton(ResultCode.PAID_BY_DIRECT_DEBIT.value, "Payer par prélèvement", "pay"),
    OutcomeButton(ResultCode.CARD_REFUSED.value, "Carte refusée", "refuse"),
    OutcomeButton(ResultCode.DIRECT_DEBIT_REFUSED.value, "Prélèvement refusé", "refuse"),
    OutcomeButton(ResultCode.ABANDONED.value, "Abandonner", "abandon"),
    OutcomeButton(LEAVE_CHOICE, "Quitter sans résultat", "leave"),
)

SAISIE_LABELS = {"T": "Test", "X": "Activation", "W": "Production"}


def format_euros(cents: int) -> str:
    """`3750` -> `37,50 €`, `10000000` -> `100 000,00 €` (French format, plain spaces)."""
    euros, remainder = divmod(cents, 100)
    return f"{euros:,}".replace(",", " ") + f",{remainder:02d} €"


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _refusal(request: web.Request, idop: str | None, error: PayFipError | None) -> web.Response:
    """A French page saying why the payment cannot go on, with an HTTP error status."""
    code = error.code if error else None
    store = request.app[OPERATIONS]
    operation = store.get(idop) if idop else None
    if code is None:
        title, explanation, status = (
            "Adresse incomplète",
            "L'adresse de cette page ne contient pas l'identifiant de l'opération de paiement.",
            400,
        )
    elif code == "P1" and operation is not None:
        title, explanation, status = (
            "Opération expirée",
            "Cette opération de paiement n'existe plus. "
            "Recommencez le paiement depuis le portail des factures.",
            410,
        )
    elif code == "P1":
        title, explanation, status = (
            "Opération inconnue",
            "Cette opération de paiement est inconnue. "
            "Vérifiez l'adresse ou recommencez le paiement depuis le portail des factures.",
            400,
        )
    elif code == "P3":
        title, explanation, status = (
            "Opération déjà utilisée",
            "Un résultat a déjà été enregistré pour cette opération de paiement. "
            "Pour payer à nouveau, recommencez depuis le portail des factures.",
            410,
        )
    elif code == "P4":
        title, explanation, status = (
            "Délai dépassé",
            "Le délai de 15 minutes pour accéder au paiement est dépassé. "
            "Recommencez le paiement depuis le portail des factures.",
            410,
        )
    else:
        title, explanation, status = ("Paiement impossible", str(error), 400)
    request.app[LOGGER].info("payment_page_refused", idop=idop, code=code, status=status)
    return _render(
        request,
        "refused.html",
        status=status,
        title=title,
        explanation=explanation,
        code=code,
        libelle=error.libelle if error else None,
    )


def _client_libelle(request: web.Request, operation: Operation) -> str:
    libelles = request.app[SETTINGS].clients.get(operation.request.numcli, [])
    return libelles[0] if libelles else operation.request.numcli


async def show_payment_page(request: web.Request) -> web.Response:
    idop = request.query.get("idop")
    if not idop:
        return _refusal(request, None, None)
    try:
        operation = request.app[OPERATIONS].open_page(idop)
    except PayFipError as error:
        return _refusal(request, idop, error)
    request.app[LOGGER].info("payment_page_opened", idop=idop)
    payment = operation.request
    return _render(
        request,
        "payment.html",
        idop=operation.idop,
        action_url=f"{request.app[SETTINGS].public_url}{PAGE_PATH}",
        client_libelle=_client_libelle(request, operation),
        numcli=payment.numcli,
        montant=format_euros(payment.montant_cents),
        objet=payment.objet,
        refdet=payment.refdet,
        mel=payment.mel,
        saisie=payment.saisie,
        saisie_label=SAISIE_LABELS.get(payment.saisie, payment.saisie),
        buttons=OUTCOME_BUTTONS,
    )


async def choose_outcome(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    idop = form.get("idop")
    choice = form.get("choix")
    if not isinstance(idop, str) or not idop:
        return _refusal(request, None, None)
    try:
        if choice == LEAVE_CHOICE:
            request.app[OPERATIONS].leave_without_result(idop)
            request.app[LOGGER].info("payer_left_without_result", idop=idop)
            return _render(request, "left.html")
        if not isinstance(choice, str) or choice not in {code.value for code in ResultCode}:
            request.app[LOGGER].warning("payment_choice_invalid", idop=idop, choice=str(choice))
            return _render(
                request,
                "refused.html",
                status=400,
                title="Choix invalide",
                explanation="Le choix envoyé n'est pas l'un de ceux proposés par la page.",
                code=None,
                libelle=None,
            )
        operation = await record_outcome(request.app, idop, ResultCode(choice), from_page=True, notify=True)
    except PayFipError as error:
        return _refusal(request, idop, error)
    raise web.HTTPSeeOther(location=redirect_url(operation))
