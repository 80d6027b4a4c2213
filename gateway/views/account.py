"""The resident's account (R1–R5, R13): login, activation, forgotten password, «Mes informations»,
«Déconnexion». Every form posts, then redirects (post/redirect/get); form errors re-show the form."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from gateway.clients import SERVICES
from gateway.forms import form_fields, safe_next
from gateway.rendering import SETTINGS, redirect, register_flash, render
from gateway.security import REFERRER_POLICY, TOWN
from gateway.sessions import (
    REMEMBER_COOKIE,
    SESSION_CACHE,
    client_address,
    current_account,
    forget_cached_sessions,
    forget_session,
    login_required,
    remember_session,
)
from shared.plumbing.http_client import ServiceError, ServiceUnavailable

routes = web.RouteTableDef()

HOME_AFTER_LOGIN = "/factures"
LINK_SEGMENT = "{token:[A-Za-z0-9_-]{20,100}}"

register_flash(
    "account_activated", "success", "Votre compte est activé : vous pouvez maintenant vous connecter."
)
register_flash(
    "password_reset", "success", "Votre mot de passe est changé : vous pouvez maintenant vous connecter."
)
register_flash("logged_out", "info", "Vous êtes déconnecté.")
register_flash(
    "already_active", "info", "Ce compte est déjà activé : connectez-vous avec votre mot de passe."
)
register_flash(
    "password_changed", "success", "Votre mot de passe est changé. Vos autres connexions ont été fermées."
)
register_flash(
    "email_change_sent",
    "success",
    "Un message vient d'être envoyé à votre nouvelle adresse. Suivez son lien pour la confirmer : d'ici là, "
    "vous vous connectez toujours avec votre adresse actuelle.",
)
register_flash(
    "email_changed",
    "success",
    "Votre nouvelle adresse est enregistrée : elle sert désormais à vous connecter.",
)


def _town_id(request: web.Request) -> str:
    return str(request[TOWN].town_id)


# --- login -----------------------------------------------------------------------------------------


@routes.get("/")
async def login_page(request: web.Request) -> web.StreamResponse:
    if current_account(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("suite"), HOME_AFTER_LOGIN))
    return render(
        request, "account/login.html", {"email": "", "error": None, "suite": request.query.get("suite", "")}
    )


@routes.post("/connexion")
async def log_in(request: web.Request) -> web.StreamResponse:
    fields = await form_fields(request, "email", "password", "souvenir", "suite")
    settings = request.app[SETTINGS]
    body = {
        "email": fields["email"][:320],
        "password": fields["password"],
        "remember": fields["souvenir"] == "oui",
        "client": client_address(request, settings),
        "previous_session_id": (account.session_id if (account := current_account(request)) else None),
    }
    try:
        session = await request.app[SERVICES].auth.post(f"/towns/{_town_id(request)}/sessions", body)
    except ServiceError as error:
        if error.status not in (401, 422, 429):
            raise
        message = error.message if error.status == 429 else "Adresse de messagerie ou mot de passe incorrect."
        response = render(
            request,
            "account/login.html",
            {"email": fields["email"], "error": message, "suite": fields["suite"]},
            status=429 if error.status == 429 else 401,
        )
        if error.status == 429 and isinstance(error.details, dict) and "retry_after" in error.details:
            response.headers["Retry-After"] = str(error.details["retry_after"])
        return response
    remember_session(request, session["session_id"], session["remember_token"])
    raise redirect(request, safe_next(fields["suite"], HOME_AFTER_LOGIN))


@routes.post("/deconnexion")
async def log_out(request: web.Request) -> web.StreamResponse:
    account = current_account(request)
    remember_token = request.cookies.get(REMEMBER_COOKIE)
    if account is not None or remember_token:
        await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}/sessions/end",
            {"session_id": account.session_id if account else None, "remember_token": remember_token},
        )
    forget_session(request)
    raise redirect(request, "/", flash="logged_out")


# --- asking for a link (activation, forgotten password) --------------------------------------------


async def _link_request_page(request: web.Request, kind: str) -> web.StreamResponse:
    return render(request, f"account/{kind}.html", {"email": "", "error": None})


async def _link_request(request: web.Request, kind: str, auth_path: str) -> web.StreamResponse:
    fields = await form_fields(request, "email")
    try:
        await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}{auth_path}", {"email": fields["email"][:320]}
        )
    except ServiceError as error:
        if error.status != 422:
            raise
        # Only the address's form is judged here, never whether it is known.
        message = (
            error.message
            if error.code == "invalid_email"
            else "Saisissez une adresse de messagerie valide, par exemple nom@exemple.fr."
        )
        return render(
            request, f"account/{kind}.html", {"email": fields["email"], "error": message}, status=422
        )
    raise redirect(request, f"/{kind}/envoye")


@routes.get("/activer")
async def activation_request_page(request: web.Request) -> web.StreamResponse:
    return await _link_request_page(request, "activer")


@routes.post("/activer")
async def activation_request(request: web.Request) -> web.StreamResponse:
    return await _link_request(request, "activer", "/activation-requests")


@routes.get("/activer/envoye")
async def activation_request_sent(request: web.Request) -> web.StreamResponse:
    return render(request, "account/link_sent.html", {"kind": "activer"})


@routes.get("/mot-de-passe-oublie")
async def reset_request_page(request: web.Request) -> web.StreamResponse:
    return await _link_request_page(request, "mot-de-passe-oublie")


@routes.post("/mot-de-passe-oublie")
async def reset_request(request: web.Request) -> web.StreamResponse:
    return await _link_request(request, "mot-de-passe-oublie", "/reset-requests")


@routes.get("/mot-de-passe-oublie/envoye")
async def reset_request_sent(request: web.Request) -> web.StreamResponse:
    return render(request, "account/link_sent.html", {"kind": "mot-de-passe-oublie"})


# --- following a link ------------------------------------------------------------------------------


async def _peek(request: web.Request, purpose: str) -> dict[str, Any] | None:
    """What the link is for; None when it expired or was used. Following a link (GET) spends nothing."""
    # The page holds a secret in its address: never let it leak to another site through Referer.
    request[REFERRER_POLICY] = "no-referrer"
    try:
        found: dict[str, Any] = await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}/links/peek",
            {"purpose": purpose, "token": request.match_info["token"]},
        )
        return found
    except ServiceError as error:
        if error.status in (410, 422):
            return None
        raise


def _invalid_link(request: web.Request, purpose: str) -> web.Response:
    return render(request, "account/link_invalid.html", {"purpose": purpose}, status=410)


def _password_page(
    request: web.Request, purpose: str, email: str, error: str | None, status: int = 200
) -> web.Response:
    return render(
        request,
        "account/choose_password.html",
        {"purpose": purpose, "email": email, "error": error, "min_length": request[TOWN].password_min_length},
        status=status,
    )


async def _choose_password(
    request: web.Request, purpose: str, auth_path: str, success_flash: str
) -> web.StreamResponse:
    link = await _peek(request, purpose)
    if link is None:
        return _invalid_link(request, purpose)
    fields = await form_fields(request, "password")
    try:
        answer = await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}{auth_path}",
            {"token": request.match_info["token"], "password": fields["password"]},
        )
    except ServiceError as error:
        if error.code == "weak_password":
            return _password_page(request, purpose, link["email"], error.message, status=422)
        if error.code == "account_already_active":
            raise redirect(request, "/", flash="already_active") from None
        if error.status in (404, 410):
            return _invalid_link(request, purpose)
        raise
    if purpose == "reset":
        # Every session of the account ended at auth; this gateway stops trusting its cached ones now.
        request.app[SESSION_CACHE].forget_account(uuid.UUID(answer["account_id"]))
    raise redirect(request, "/", flash=success_flash)


@routes.get(f"/compte/activation/{LINK_SEGMENT}")
async def activation_page(request: web.Request) -> web.StreamResponse:
    link = await _peek(request, "activation")
    if link is None:
        return _invalid_link(request, "activation")
    return _password_page(request, "activation", link["email"], None)


@routes.post(f"/compte/activation/{LINK_SEGMENT}")
async def activate(request: web.Request) -> web.StreamResponse:
    request[REFERRER_POLICY] = "no-referrer"
    return await _choose_password(request, "activation", "/activations", "account_activated")


@routes.get(f"/compte/nouveau-mot-de-passe/{LINK_SEGMENT}")
async def reset_page(request: web.Request) -> web.StreamResponse:
    link = await _peek(request, "reset")
    if link is None:
        return _invalid_link(request, "reset")
    return _password_page(request, "reset", link["email"], None)


@routes.post(f"/compte/nouveau-mot-de-passe/{LINK_SEGMENT}")
async def reset(request: web.Request) -> web.StreamResponse:
    request[REFERRER_POLICY] = "no-referrer"
    return await _choose_password(request, "reset", "/password-resets", "password_reset")


@routes.get(f"/compte/confirmer-adresse/{LINK_SEGMENT}")
async def email_change_page(request: web.Request) -> web.StreamResponse:
    link = await _peek(request, "email_change")
    if link is None:
        return _invalid_link(request, "email_change")
    return render(request, "account/confirm_email.html", {"new_email": link["new_email"]})


@routes.post(f"/compte/confirmer-adresse/{LINK_SEGMENT}")
async def confirm_email_change(request: web.Request) -> web.StreamResponse:
    request[REFERRER_POLICY] = "no-referrer"
    try:
        await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}/email-changes", {"token": request.match_info["token"]}
        )
    except ServiceError as error:
        if error.code == "email_unavailable":
            return render(request, "account/link_invalid.html", {"purpose": "email_unavailable"}, status=409)
        if error.status in (404, 410, 422):
            return _invalid_link(request, "email_change")
        raise
    forget_cached_sessions(request)
    raise redirect(request, "/mes-informations" if current_account(request) else "/", flash="email_changed")


# --- «Mes informations» ----------------------------------------------------------------------------


async def _information_page(
    request: web.Request,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "account/information.html",
        {
            "errors": errors or {},
            "values": values or {},
            "min_length": request[TOWN].password_min_length,
            "alerts": await _alert_preferences(request),
        },
        status=status,
    )


@routes.get("/mes-informations")
@login_required
async def information(request: web.Request) -> web.StreamResponse:
    return await _information_page(request)


@routes.post("/mes-informations/mot-de-passe")
@login_required
async def change_password(request: web.Request) -> web.StreamResponse:
    account = current_account(request)
    assert account is not None
    fields = await form_fields(request, "current_password", "new_password")
    try:
        await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}/accounts/{account.account_id}/password",
            {
                "session_id": account.session_id,
                "current_password": fields["current_password"],
                "new_password": fields["new_password"],
            },
        )
    except ServiceError as error:
        if error.code == "invalid_credentials" or error.status == 429:
            return await _information_page(request, {"current_password": error.message}, status=422)
        if error.code == "weak_password":
            return await _information_page(request, {"new_password": error.message}, status=422)
        raise
    forget_cached_sessions(request)
    raise redirect(request, "/mes-informations", flash="password_changed")


@routes.post("/mes-informations/adresse")
@login_required
async def change_email(request: web.Request) -> web.StreamResponse:
    account = current_account(request)
    assert account is not None
    fields = await form_fields(request, "new_email", "email_password")
    try:
        await request.app[SERVICES].auth.post(
            f"/towns/{_town_id(request)}/accounts/{account.account_id}/email-change-requests",
            {"new_email": fields["new_email"][:320], "current_password": fields["email_password"]},
        )
    except ServiceError as error:
        values = {"new_email": fields["new_email"]}
        if error.code == "invalid_credentials" or error.status == 429:
            return await _information_page(request, {"email_password": error.message}, values, status=422)
        if error.code in ("invalid_email", "email_unavailable", "invalid_request"):
            message = error.message if error.code != "invalid_request" else "Saisissez une adresse valide."
            return await _information_page(request, {"new_email": message}, values, status=422)
        raise
    raise redirect(request, "/mes-informations", flash="email_change_sent")


# --- «Mes informations»: e-mail alerts (R15) ---------------------------------------------------------

register_flash(
    "alerts_on",
    "success",
    "Votre choix est enregistré : vous recevrez un e-mail quand de nouvelles factures seront publiées.",
)
register_flash(
    "alerts_off",
    "success",
    "Votre choix est enregistré : vous ne recevrez plus d'e-mail quand de nouvelles factures seront publiées.",
)


async def _alert_preferences(request: web.Request) -> dict[str, Any] | None:
    """The resident's alert choice and whether the town sends alerts at all; None when the invoices
    service cannot tell now (the rest of «Mes informations» still works without it)."""
    account = current_account(request)
    assert account is not None
    try:
        found: dict[str, Any] = await request.app[SERVICES].invoices.get(
            f"/towns/{_town_id(request)}/accounts/{account.account_id}/preferences"
        )
    except ServiceUnavailable:
        return None
    except ServiceError as error:
        if error.status != 404:  # 404: the account is so new that invoices has not recorded it yet
            raise
        return None
    return found


@routes.post("/mes-informations/alertes")
@login_required
async def change_alerts(request: web.Request) -> web.StreamResponse:
    account = current_account(request)
    assert account is not None
    fields = await form_fields(request, "alerts")
    wanted = fields["alerts"] == "oui"  # an unticked box sends nothing: alerts off
    try:
        await request.app[SERVICES].invoices.request(
            "PUT",
            f"/towns/{_town_id(request)}/accounts/{account.account_id}/preferences",
            json={"alerts_enabled": wanted},
        )
    except ServiceError as error:
        if error.status != 404:
            raise
        return await _information_page(
            request,
            {
                "alerts": "Votre choix n'a pas pu être enregistré pour le moment : réessayez dans quelques minutes."
            },
            status=503,
        )
    raise redirect(request, "/mes-informations", flash="alerts_on" if wanted else "alerts_off")
