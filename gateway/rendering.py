"""Pages: the jinja2 environment, `render`, flash messages after a redirect, and the error pages."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.security import NONCE, TOWN, CsrfRejected, UnknownTown, csrf_token
from gateway.sessions import current_account
from gateway.settings import Settings
from shared.contracts.values import format_date, format_datetime, format_euros
from shared.plumbing.http_client import ServiceError, ServiceUnavailable
from shared.plumbing.logging import current_correlation_id, get_logger

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TEMPLATES = Path(__file__).parent / "templates"
JINJA = web.AppKey("jinja", jinja2.Environment)
SETTINGS = web.AppKey("gateway_settings", Settings)
FLASH_COOKIE = "portail_flash"

# Messages shown once after a redirect. The cookie carries only the key, so nothing a visitor puts in a
# URL or a cookie can ever appear on a page as text.
FLASH_MESSAGES: dict[str, tuple[str, str]] = {}


def register_flash(key: str, level: str, text: str) -> None:
    """`level` is success, info or error (the styles of the notice shown on the next page)."""
    FLASH_MESSAGES[key] = (level, text)


def create_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["euros"] = format_euros
    env.filters["date_fr"] = format_date
    env.filters["datetime_fr"] = format_datetime
    return env


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    settings = request.app[SETTINGS]
    page_context = {
        "town": request.get(TOWN),
        "account": current_account(request),
        "nonce": request.get(NONCE, ""),
        "csrf_token": lambda: csrf_token(request, settings),
        "path": request.path,
        "flash": _take_flash(request),
        **(context or {}),
    }
    body = request.app[JINJA].get_template(template).render(page_context)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    if FLASH_COOKIE in request.cookies:
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def _take_flash(request: web.Request) -> tuple[str, str] | None:
    key = request.cookies.get(FLASH_COOKIE)
    return FLASH_MESSAGES.get(key) if key else None


def redirect(request: web.Request, location: str, *, flash: str | None = None) -> web.HTTPSeeOther:
    """Post/redirect/get: answer a form with a 303 to a page, with an optional message for it."""
    if not location.startswith("/") or location.startswith("//"):
        location = "/"  # only ever redirect within the town's own site
    response = web.HTTPSeeOther(location)
    if flash is not None:
        if flash not in FLASH_MESSAGES:
            raise KeyError(f"unknown flash message {flash}")
        settings = request.app[SETTINGS]
        response.set_cookie(
            FLASH_COOKIE,
            flash,
            httponly=True,
            samesite="Lax",
            secure=settings.secure_cookies,
            path="/",
            max_age=60,
        )
    return response


def error_middleware() -> Middleware:
    """Every error is a French page with a way back; no stack trace ever reaches a browser."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownTown:
            return render(request, "errors/unknown_town.html", status=404)
        except CsrfRejected:
            return render(request, "errors/csrf.html", status=403)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            template = {
                404: "errors/404.html",
                405: "errors/405.html",
                413: "errors/413.html",
                429: "errors/429.html",
            }.get(exc.status, "errors/400.html" if exc.status < 500 else "errors/500.html")
            response = render(request, template, status=exc.status)
            if "Retry-After" in exc.headers:
                response.headers["Retry-After"] = exc.headers["Retry-After"]
            return response
        except ServiceError as error:
            # A service refused something the page did not expect to be refused: say so, keep no trace.
            log.warning("page_service_refused", path=request.path, callee=error.service, code=error.code)
            template = "errors/404.html" if error.status == 404 else "errors/400.html"
            return render(request, template, status=404 if error.status == 404 else 400)
        except ServiceUnavailable as error:
            log.warning("page_service_unavailable", path=request.path, callee=error.service)
            response = render(request, "errors/503.html", {"service": error.service}, status=503)
            response.headers["Retry-After"] = "30"
            return response
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("page_failed", method=request.method, path=request.path)
            return render(request, "errors/500.html", {"incident": current_correlation_id()}, status=500)

    return middleware
