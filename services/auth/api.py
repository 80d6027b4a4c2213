"""HTTP routes of the auth service, called by the gateway only (internal token).

Secrets (passwords, link tokens, session ids, remember-me tokens) travel in JSON bodies, never in URLs,
so that no access log or proxy ever records one.
"""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.auth import handlers
from services.auth.domain import AuthError, LinkPurpose, TooManyAttempts
from services.auth.handlers import AuthContext
from services.auth.repository import AuthUnitOfWork
from shared.plumbing.openapi import ApiRoutes
from shared.plumbing.runtime import POOL
from shared.plumbing.web import ApiError, json_model, parse_json

CONTEXT = web.AppKey("auth_context", AuthContext)

routes = ApiRoutes(title="Le portail des factures: auth service")

ERRORS = (401, 404, 409, 410, 429)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailIn(_Body):
    email: str = Field(max_length=320)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class LinkIn(_Body):
    purpose: Literal["activation", "reset", "email_change"]
    token: str = Field(min_length=10, max_length=100)


class LinkOut(BaseModel):
    purpose: str
    email: str
    new_email: str | None = None


class TokenPasswordIn(_Body):
    token: str = Field(min_length=10, max_length=100)
    password: str = Field(max_length=4096)


class TokenIn(_Body):
    token: str = Field(min_length=10, max_length=100)


class AccountOut(BaseModel):
    account_id: uuid.UUID
    email: str


class LoginIn(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=4096)
    remember: bool = False
    client: str = Field(default="", max_length=100, description="The resident's address, for throttling")
    previous_session_id: str | None = Field(default=None, max_length=100)


class SessionOut(BaseModel):
    session_id: str
    remember_token: str | None
    account_id: uuid.UUID
    email: str


class SessionIn(_Body):
    session_id: str = Field(min_length=10, max_length=100)


class ResolvedSession(BaseModel):
    account_id: uuid.UUID
    email: str
    remembered: bool


class RememberIn(_Body):
    remember_token: str = Field(min_length=10, max_length=200)


class LogoutIn(_Body):
    session_id: str | None = Field(default=None, max_length=100)
    remember_token: str | None = Field(default=None, max_length=200)


class PasswordChangeIn(_Body):
    session_id: str = Field(min_length=10, max_length=100)
    current_password: str = Field(max_length=4096)
    new_password: str = Field(max_length=4096)


class EmailChangeIn(_Body):
    current_password: str = Field(max_length=4096)
    new_email: str = Field(max_length=320)


class ChangedEmail(BaseModel):
    email: str


def _uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "not_found", "Ressource introuvable.") from None


def _context(request: web.Request) -> AuthContext:
    return request.app[CONTEXT]


def _new_uow(request: web.Request) -> handlers.NewUnitOfWork:
    pool = request.app[POOL]
    return lambda: AuthUnitOfWork(pool, producer="auth")


def _api_error(error: AuthError) -> ApiError:
    return ApiError(error.status, error.code, error.message)


def _too_many(error: TooManyAttempts) -> web.Response:
    response = web.json_response(
        {
            "error": {
                "code": error.code,
                "message": error.message,
                "details": {"retry_after": error.retry_after_seconds},
            }
        },
        status=429,
    )
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


async def _request_link(request: web.Request, purpose: LinkPurpose) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, EmailIn)
    try:
        async with _new_uow(request)() as uow:
            await handlers.request_link(purpose, town_id, body.email, uow=uow, ctx=_context(request))
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(Accepted(), status=202)


@routes.route(
    "POST",
    "/towns/{town_id}/activation-requests",
    summary="Ask for an activation link (R2)",
    body=EmailIn,
    response=Accepted,
    status=202,
    errors=(404,),
)
async def post_activation_request(request: web.Request) -> web.Response:
    return await _request_link(request, LinkPurpose.ACTIVATION)


@routes.route(
    "POST",
    "/towns/{town_id}/reset-requests",
    summary="Ask for a password reset link (R5)",
    body=EmailIn,
    response=Accepted,
    status=202,
    errors=(404,),
)
async def post_reset_request(request: web.Request) -> web.Response:
    return await _request_link(request, LinkPurpose.RESET)


@routes.route(
    "POST",
    "/towns/{town_id}/links/peek",
    summary="What a link is for, without spending it",
    body=LinkIn,
    response=LinkOut,
    errors=(410,),
)
async def peek_link(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, LinkIn)
    try:
        async with _new_uow(request)() as uow:
            email, new_email = await handlers.peek_link(
                LinkPurpose(body.purpose), town_id, body.token, uow=uow
            )
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(LinkOut(purpose=body.purpose, email=email, new_email=new_email))


@routes.route(
    "POST",
    "/towns/{town_id}/activations",
    summary="Spend an activation link: choose a password (R3)",
    body=TokenPasswordIn,
    response=AccountOut,
    status=201,
    errors=ERRORS,
)
async def post_activation(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, TokenPasswordIn)
    try:
        account = await handlers.activate_account(
            town_id, body.token, body.password, new_uow=_new_uow(request), ctx=_context(request)
        )
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(AccountOut(account_id=account.account_id, email=account.email), status=201)


@routes.route(
    "POST",
    "/towns/{town_id}/password-resets",
    summary="Spend a reset link: choose a new password (R5)",
    body=TokenPasswordIn,
    response=AccountOut,
    errors=ERRORS,
)
async def post_password_reset(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, TokenPasswordIn)
    try:
        account = await handlers.reset_password(
            town_id, body.token, body.password, new_uow=_new_uow(request), ctx=_context(request)
        )
    except AuthError as error:
        raise _api_error(error) from None
    # The account is named so that the gateway can forget the sessions it had cached for it.
    return json_model(AccountOut(account_id=account.account_id, email=account.email))


@routes.route(
    "POST",
    "/towns/{town_id}/email-changes",
    summary="Spend an e-mail change link (R13)",
    body=TokenIn,
    response=ChangedEmail,
    errors=ERRORS,
)
async def post_email_change(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, TokenIn)
    try:
        async with _new_uow(request)() as uow:
            email = await handlers.confirm_email_change(town_id, body.token, uow=uow)
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(ChangedEmail(email=email))


@routes.route(
    "POST",
    "/towns/{town_id}/sessions",
    summary="Log in (R1, R4)",
    body=LoginIn,
    response=SessionOut,
    status=201,
    errors=ERRORS,
)
async def post_session(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, LoginIn)
    try:
        logged_in = await handlers.log_in(
            town_id,
            body.email,
            body.password,
            remember=body.remember,
            client=body.client,
            previous_session_id=body.previous_session_id,
            new_uow=_new_uow(request),
            ctx=_context(request),
        )
    except TooManyAttempts as error:
        return _too_many(error)
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(SessionOut(**logged_in.__dict__), status=201)


@routes.route(
    "POST",
    "/towns/{town_id}/sessions/resolve",
    summary="Who holds this session",
    body=SessionIn,
    response=ResolvedSession,
    errors=(404,),
)
async def resolve_session(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, SessionIn)
    # Every page view asks this: each statement commits on its own, no BEGIN/COMMIT round trips.
    async with AuthUnitOfWork(request.app[POOL], producer="auth", transactional=False) as uow:
        resolved = await handlers.resolve_session(town_id, body.session_id, uow=uow, ctx=_context(request))
    if resolved is None:
        raise ApiError(404, "session_not_found", "Session inconnue ou terminée.")
    return json_model(ResolvedSession(**resolved.__dict__))


@routes.route(
    "POST",
    "/towns/{town_id}/sessions/remembered",
    summary="Open a session from a remember-me token",
    body=RememberIn,
    response=SessionOut,
    status=201,
    errors=(404,),
)
async def post_remembered(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, RememberIn)
    logged_in = await handlers.resume_remembered(
        town_id, body.remember_token, new_uow=_new_uow(request), ctx=_context(request)
    )
    if logged_in is None:
        raise ApiError(404, "remember_token_not_found", "Jeton « Se souvenir de moi » inconnu ou expiré.")
    return json_model(SessionOut(**logged_in.__dict__), status=201)


@routes.route(
    "POST",
    "/towns/{town_id}/sessions/end",
    summary="Log out: end the session and its remember-me token",
    body=LogoutIn,
    status=204,
)
async def end_session(request: web.Request) -> web.Response:
    town_id = _uuid(request, "town_id")
    body = await parse_json(request, LogoutIn)
    async with _new_uow(request)() as uow:
        await handlers.log_out(town_id, body.session_id, body.remember_token, uow=uow)
    return web.Response(status=204)


@routes.route(
    "POST",
    "/towns/{town_id}/accounts/{account_id}/password",
    summary="Change the password (R13)",
    body=PasswordChangeIn,
    response=Accepted,
    errors=ERRORS,
)
async def post_password_change(request: web.Request) -> web.Response:
    town_id, account_id = _uuid(request, "town_id"), _uuid(request, "account_id")
    body = await parse_json(request, PasswordChangeIn)
    try:
        await handlers.change_password(
            town_id,
            account_id,
            body.session_id,
            body.current_password,
            body.new_password,
            new_uow=_new_uow(request),
            ctx=_context(request),
        )
    except TooManyAttempts as error:
        return _too_many(error)
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(Accepted())


@routes.route(
    "POST",
    "/towns/{town_id}/accounts/{account_id}/email-change-requests",
    summary="Ask to change the login e-mail (R13)",
    body=EmailChangeIn,
    response=Accepted,
    status=202,
    errors=ERRORS,
)
async def post_email_change_request(request: web.Request) -> web.Response:
    town_id, account_id = _uuid(request, "town_id"), _uuid(request, "account_id")
    body = await parse_json(request, EmailChangeIn)
    try:
        await handlers.request_email_change(
            town_id,
            account_id,
            body.current_password,
            body.new_email,
            new_uow=_new_uow(request),
            ctx=_context(request),
        )
    except TooManyAttempts as error:
        return _too_many(error)
    except AuthError as error:
        raise _api_error(error) from None
    return json_model(Accepted(), status=202)
