"""What the gateway does for every page: security headers, the CSRF check, the town from the Host.

CSRF: a random cookie (`portail_csrf`) and, in every form, an HMAC of it under the gateway's secret key.
A forged form from another site has neither the cookie (SameSite) nor a token that matches it; a cookie
planted by a sibling sub-domain has no matching token either. The Origin header, when the browser sends
it, must be the page's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.clients import TOWNS, Town
from gateway.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSRF_COOKIE = "portail_csrf"
CSRF_FIELD = "csrf_token"
NONCE = web.RequestKey("csp_nonce", str)
TOWN = web.RequestKey("town", Town)
CSRF_COOKIE_VALUE = web.RequestKey("csrf_cookie_value", str)
NEW_CSRF_COOKIE = web.RequestKey("new_csrf_cookie", bool)
REFERRER_POLICY = web.RequestKey("referrer_policy", str)

# Paths served without a town (static files, probes) and the one POST that comes from PayFiP's servers.
TOWNLESS_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics", "/payfip/")
CSRF_EXEMPT_PATHS = frozenset({"/payfip/notification"})
MAX_FORM_BYTES = 64 * 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def csrf_token(request: web.Request, settings: Settings) -> str:
    """The token to put in a form; creates the CSRF cookie on first use."""
    value = request.get(CSRF_COOKIE_VALUE) or request.cookies.get(CSRF_COOKIE)
    if not value or len(value) > 100:
        value = _b64(secrets.token_bytes(32))
        request[NEW_CSRF_COOKIE] = True
    request[CSRF_COOKIE_VALUE] = value
    return _sign(value, settings)


def _sign(value: str, settings: Settings) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return _b64(hmac.new(key, b"csrf:" + value.encode(), hashlib.sha256).digest())


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        # Old browsers send none; the token check below still applies. "null" comes from
        # sandboxed or privacy-sensitive contexts: the token decides too.
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def headers_middleware(settings: Settings) -> Middleware:
    """Security headers on every answer, error pages included; the CSRF cookie when a form made one."""
    payfip = settings.payfip_origin.rstrip("/")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[NONCE] = _b64(secrets.token_bytes(16))
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects
            _add_headers(request, exc, settings, payfip)
            _set_csrf_cookie(request, exc, settings)
            raise
        _add_headers(request, response, settings, payfip)
        _set_csrf_cookie(request, response, settings)
        return response

    return middleware


def _set_csrf_cookie(request: web.Request, response: web.StreamResponse, settings: Settings) -> None:
    if request.get(NEW_CSRF_COOKIE):
        response.set_cookie(
            CSRF_COOKIE,
            request[CSRF_COOKIE_VALUE],
            httponly=True,
            samesite="Lax",
            secure=settings.secure_cookies,
            path="/",
        )


def csrf_middleware(settings: Settings) -> Middleware:
    """Every state-changing request carries a valid token and comes from the town's own pages."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path not in CSRF_EXEMPT_PATHS:
            await _check_csrf(request, settings)
        return await handler(request)

    return middleware


class CsrfRejected(web.HTTPForbidden):
    """A form without a valid token, or posted from another origin."""


async def _check_csrf(request: web.Request, settings: Settings) -> None:
    if not _same_origin(request):
        raise CsrfRejected()
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM_BYTES, actual_size=request.content_length)
    cookie = request.cookies.get(CSRF_COOKIE)
    form = await request.post()
    given = form.get(CSRF_FIELD)
    if not cookie or not isinstance(given, str) or not hmac.compare_digest(given, _sign(cookie, settings)):
        raise CsrfRejected()


def _add_headers(request: web.Request, response: web.StreamResponse, settings: Settings, payfip: str) -> None:
    headers = response.headers
    if request.path.startswith("/static/"):
        headers.setdefault("X-Content-Type-Options", "nosniff")
        return
    nonce = request[NONCE]
    headers["Content-Security-Policy"] = (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        f"form-action 'self' {payfip}; "
        "frame-ancestors 'none'; "
        "base-uri 'none'; "
        "object-src 'none'"
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = request.get(REFERRER_POLICY, "same-origin")
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    # Pages show personal data (invoices, addresses): never keep them in a shared or back/forward cache.
    headers.setdefault("Cache-Control", "no-store")
    if settings.environment == "production":
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"


def town_middleware() -> Middleware:
    """Every page belongs to the town named by the Host header; an unknown host is a French 404."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(TOWNLESS_PREFIXES):
            return await handler(request)
        host = (request.host or "").lower().rsplit(":", 1)[0].rstrip(".")
        town = await request.app[TOWNS].by_host(host) if host else None
        if town is None:
            raise UnknownTown()
        request[TOWN] = town
        return await handler(request)

    return middleware


class UnknownTown(web.HTTPNotFound):
    """No town is served on this host name."""
