"""Composition root of the gateway: the residents' pages, in French, one town per host name."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.clients import clients_ctx
from gateway.rendering import JINJA, SETTINGS, create_environment, error_middleware
from gateway.security import csrf_middleware, headers_middleware, town_middleware
from gateway.sessions import SESSION_CACHE, SessionCache, session_middleware
from gateway.settings import Settings
from gateway.views import account, contact, invoices, pages, payfip, payments
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import HTTP_LIMITS, METRICS
from shared.plumbing.web import add_health_routes, correlation_middleware, metrics_middleware

SERVICE = "gateway"
STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings) -> web.Application:
    metrics = create_metrics(SERVICE)
    app = web.Application(
        middlewares=[
            correlation_middleware,
            metrics_middleware(metrics),
            # Security headers go on error pages too, so it wraps the error pages' middleware.
            headers_middleware(settings),
            error_middleware(),
            town_middleware(),
            session_middleware(settings),
            csrf_middleware(settings),
        ],
        client_max_size=1024**2,
        handler_args=HTTP_LIMITS,
    )
    app[METRICS] = metrics
    app[SETTINGS] = settings
    app[JINJA] = create_environment()
    app[SESSION_CACHE] = SessionCache(settings.session_cache_seconds)
    app.cleanup_ctx.append(clients_ctx(settings))

    async def services_ready() -> bool:
        from gateway.clients import SERVICES

        services = app[SERVICES]
        for client in (services.auth, services.invoices, services.payments):
            await client.get("/healthz")
        return True

    add_health_routes(app, metrics=metrics, checks={"services": services_ready})
    for module in (pages, account, payfip, invoices, contact, payments):
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app
