"""The HTTP edge every service shares: correlation ids, metrics, one error shape, health and readiness.

Every API error has the same JSON shape, `{"error": {"code", "message", "details"}}`: `code` is stable and
machine-readable, `message` is French (it may reach a billing office's agent), `details` is optional
(field errors, bad rows). No stack trace ever leaves the process; it goes to the logs with the
correlation id that the answer also carries.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from shared.plumbing.logging import (
    CORRELATION_HEADER,
    bind_correlation_id,
    clean_correlation_id,
    get_logger,
)
from shared.plumbing.metrics import Metrics

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadinessCheck = Callable[[], Awaitable[object]]
ModelT = TypeVar("ModelT", bound=BaseModel)

INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105  # a header's name, not a secret
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


_HTTP_ERROR_CODES: Mapping[int, tuple[str, str]] = {
    400: ("bad_request", "Requête invalide."),
    401: ("unauthorized", "Authentification requise."),
    403: ("forbidden", "Accès refusé."),
    404: ("not_found", "Ressource introuvable."),
    405: ("method_not_allowed", "Méthode non autorisée."),
    409: ("conflict", "Conflit avec l'état actuel."),
    413: ("payload_too_large", "Requête trop volumineuse."),
    415: ("unsupported_media_type", "Type de contenu non pris en charge."),
    422: ("invalid_request", "Données invalides."),
    429: ("too_many_requests", "Trop de requêtes, réessayez plus tard."),
}


@web.middleware
async def correlation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    correlation_id = clean_correlation_id(request.headers.get(CORRELATION_HEADER))
    bind_correlation_id(correlation_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[CORRELATION_HEADER] = correlation_id
        raise
    response.headers[CORRELATION_HEADER] = correlation_id
    return response


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_name(request)
            elapsed = time.perf_counter() - started
            metrics.http_requests.labels(method=request.method, route=route, status=str(status)).inc()
            metrics.http_latency.labels(method=request.method, route=route).observe(elapsed)
            if route not in ("/healthz", "/readyz", "/metrics"):
                log.info(
                    "request_handled",
                    method=request.method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )

    return middleware


def _route_name(request: web.Request) -> str:
    """The route's template (`/invoices/{invoice_id}`), never the raw path: bounded label values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def json_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, error.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _HTTP_ERROR_CODES.get(exc.status, ("http_error", exc.reason))
        response = error_response(exc.status, code, message)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        return error_response(500, "internal_error", "Erreur interne ; l'incident est enregistré.")


def internal_token_middleware(token: str, *, open_prefixes: tuple[str, ...] = ()) -> Middleware:
    """Service-to-service calls carry a shared token; health, readiness, metrics and the routes under
    `open_prefixes` (which authenticate their callers themselves, e.g. the office API's keys) stay open."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or (open_prefixes and request.path.startswith(open_prefixes)):
            return await handler(request)
        given = request.headers.get(INTERNAL_TOKEN_HEADER, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(401, "unauthorized", "Jeton interne manquant ou invalide.")
        return await handler(request)

    return middleware


async def parse_json(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read a JSON body into a pydantic model; a bad body is a 422 listing each field's problem."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "Le corps doit être du JSON (application/json).")
    try:
        raw = await request.read()
        return model.model_validate_json(raw)
    except ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ApiError(422, "invalid_request", "Données invalides.", details) from None


def json_model(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json(), status=status, content_type="application/json")


def add_health_routes(
    app: web.Application, *, metrics: Metrics, checks: Mapping[str, ReadinessCheck]
) -> None:
    """`/healthz`: the process answers. `/readyz`: its database and broker answer too."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "service": metrics.service})

    async def run_checks() -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                outcome = await asyncio.wait_for(check(), 3.0)
                results[name] = "ok" if outcome is not False else "unavailable"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}"
        ready = all(value == "ok" for value in results.values())
        metrics.ready.set(1 if ready else 0)
        return ready, results

    async def refresh_readiness() -> None:
        # Prometheus sees what the orchestrator's readiness probe sees, so an alert can say
        # "not ready for 5 minutes" without a Kubernetes-specific exporter.
        await run_checks()

    metrics.refreshers.append(refresh_readiness)

    async def readyz(_request: web.Request) -> web.Response:
        ready, results = await run_checks()
        return web.json_response(
            {"status": "ready" if ready else "not_ready", "service": metrics.service, "checks": results},
            status=200 if ready else 503,
        )

    async def metrics_view(_request: web.Request) -> web.Response:
        body = await metrics.render()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)


def parse_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """Read query parameters into a pydantic model; bad ones are a 422 listing each problem."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "type": e["type"]}
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ApiError(422, "invalid_request", "Paramètres invalides.", details) from None
