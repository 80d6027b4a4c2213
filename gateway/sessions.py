"""Who is logged in: the resident's session, resolved by the auth service from the session cookie.

Two cookies, both HttpOnly, SameSite=Lax, Secure outside local development, without Domain (each town's
host keeps its own):
- `portail_session`: the session id, a browser-session cookie (no Max-Age): it ends with the browser,
  and auth ends it after an idle time;
- `portail_souvenir`: only with «Se souvenir de moi», a 30-day token; when the browser comes back without
  a session, auth opens a new one from it and rotates it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.clients import SERVICES
from gateway.security import TOWN
from gateway.settings import Settings
from shared.plumbing.http_client import ServiceError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE = "portail_session"
REMEMBER_COOKIE = "portail_souvenir"
REMEMBER_MAX_AGE = 30 * 24 * 3600


@dataclass(frozen=True)
class Account:
    account_id: uuid.UUID
    town_id: uuid.UUID
    email: str
    session_id: str


@dataclass(frozen=True)
class CookieChange:
    """Cookies to write on the answer: a new session (and token), or clearing stale ones."""

    session_id: str | None = None
    remember_token: str | None = None
    clear_session: bool = False
    clear_remember: bool = False


class SessionCache:
    """Sessions resolved by auth in the last seconds, so that a resident's page views do not each cost
    a call to auth. The price, chosen on purpose and bounded by `ttl`: a session ended elsewhere (on
    another gateway replica, by a password reset) still opens pages here for at most `ttl` seconds. What
    this gateway ends itself (logout, password or e-mail change) is forgotten at once."""

    def __init__(self, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[tuple[uuid.UUID, str], tuple[float, Account]] = {}

    def get(self, town_id: uuid.UUID, session_id: str) -> Account | None:
        entry = self._entries.get((town_id, session_id))
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[(town_id, session_id)]
            return None
        return entry[1]

    def put(self, account: Account) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # a burst of distinct sessions: start again rather than grow
        self._entries[(account.town_id, account.session_id)] = (time.monotonic() + self._ttl, account)

    def forget_account(self, account_id: uuid.UUID) -> None:
        for key in [k for k, (_, a) in self._entries.items() if a.account_id == account_id]:
            del self._entries[key]


ACCOUNT = web.RequestKey("account", Account)
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
COOKIE_CHANGE = web.RequestKey("cookie_change", CookieChange)


def current_account(request: web.Request) -> Account | None:
    return request.get(ACCOUNT)


def login_required(handler: Handler) -> Handler:
    """Pages with personal data: anonymous visitors go to the login page, then come back."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        if current_account(request) is None:
            raise web.HTTPSeeOther(f"/?suite={quote(request.path_qs, safe='')}")
        return await handler(request)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def client_address(request: web.Request, settings: Settings) -> str:
    """The resident's address for throttling; behind a trusted proxy, the one it reports."""
    if settings.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:100]
    return request.remote or "unknown"


def remember_session(request: web.Request, session_id: str, remember_token: str | None) -> None:
    """After a login: the answer sets the new session (and remember-me) cookies."""
    request[COOKIE_CHANGE] = CookieChange(session_id=session_id, remember_token=remember_token)


def forget_session(request: web.Request) -> None:
    """After a logout: the answer clears both cookies."""
    request[COOKIE_CHANGE] = CookieChange(clear_session=True, clear_remember=True)
    forget_cached_sessions(request)


def forget_cached_sessions(request: web.Request) -> None:
    """The account's sessions changed on the server (logout, password or e-mail change): ask auth again."""
    account = current_account(request)
    if account is not None:
        request.app[SESSION_CACHE].forget_account(account.account_id)


def apply_cookie_change(response: web.StreamResponse, change: CookieChange, settings: Settings) -> None:
    common: dict[str, Any] = {
        "httponly": True,
        "samesite": "Lax",
        "secure": settings.secure_cookies,
        "path": "/",
    }
    if change.session_id:
        response.set_cookie(SESSION_COOKIE, change.session_id, **common)
    elif change.clear_session:
        response.del_cookie(SESSION_COOKIE, path="/")
    if change.remember_token:
        response.set_cookie(REMEMBER_COOKIE, change.remember_token, max_age=REMEMBER_MAX_AGE, **common)
    elif change.clear_remember:
        response.del_cookie(REMEMBER_COOKIE, path="/")


def session_middleware(settings: Settings) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        town = request.get(TOWN)
        if town is not None:
            await _resolve(request, town.town_id)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if COOKIE_CHANGE in request:
                apply_cookie_change(exc, request[COOKIE_CHANGE], settings)
            raise
        if COOKIE_CHANGE in request:
            apply_cookie_change(response, request[COOKIE_CHANGE], settings)
        return response

    return middleware


async def _resolve(request: web.Request, town_id: uuid.UUID) -> None:
    auth = request.app[SERVICES].auth
    session_id = request.cookies.get(SESSION_COOKIE)
    clear_session = False
    if session_id and 10 <= len(session_id) <= 100:
        cached = request.app[SESSION_CACHE].get(town_id, session_id)
        if cached is not None:
            request[ACCOUNT] = cached
            return
        try:
            data = await auth.post(f"/towns/{town_id}/sessions/resolve", {"session_id": session_id})
            account = Account(uuid.UUID(data["account_id"]), town_id, data["email"], session_id)
            request.app[SESSION_CACHE].put(account)
            request[ACCOUNT] = account
            return
        except ServiceError as error:
            if error.status != 404:
                raise
            clear_session = True
    elif session_id:
        clear_session = True
    remember_token = request.cookies.get(REMEMBER_COOKIE)
    if not remember_token:
        if clear_session:
            request[COOKIE_CHANGE] = CookieChange(clear_session=True)
        return
    try:
        data = await auth.post(
            f"/towns/{town_id}/sessions/remembered", {"remember_token": remember_token[:200]}
        )
    except ServiceError as error:
        if error.status not in (404, 422):
            raise
        request[COOKIE_CHANGE] = CookieChange(clear_session=clear_session, clear_remember=True)
        return
    request[ACCOUNT] = Account(uuid.UUID(data["account_id"]), town_id, data["email"], data["session_id"])
    request[COOKIE_CHANGE] = CookieChange(
        session_id=data["session_id"], remember_token=data["remember_token"]
    )
