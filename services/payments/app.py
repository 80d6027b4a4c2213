"""Composition root of the payments service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

from services.payments import api
from services.payments.consumer import SUBSCRIPTIONS
from services.payments.handlers import PaymentsContext, run_reconciler
from services.payments.invoices_client import InvoicesClient
from services.payments.metrics import PaymentsMetrics
from services.payments.payfip import PayfipClient
from services.payments.repository import PaymentsUnitOfWork
from services.payments.settings import Settings
from shared.plumbing.http_client import ServiceClient
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import (
    METRICS,
    POOL,
    background_task_ctx,
    consumer_ctx,
    database_ctx,
    outbox_ctx,
    service_app,
)

SERVICE = "payments"
MIGRATIONS = Path(__file__).parent / "migrations"
SETTINGS = web.AppKey("payments_settings", Settings)


def uow_factory(app: web.Application) -> Callable[[], PaymentsUnitOfWork]:
    return lambda: PaymentsUnitOfWork(app[POOL], producer=SERVICE)


def clients_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """One HTTP session for PayFiP and the invoices service; the use cases' context hangs off the app."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        token = settings.internal_token.get_secret_value() if settings.internal_token else None
        connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[api.CONTEXT] = PaymentsContext(
                pool=app[POOL],
                payfip=PayfipClient(
                    session,
                    base_url=settings.payfip_url,
                    timeout_seconds=settings.payfip_timeout_seconds,
                    page_url=settings.payfip_page_url,
                ),
                invoices=InvoicesClient(
                    ServiceClient(
                        session,
                        service="invoices",
                        base_url=settings.invoices_url,
                        internal_token=token,
                        timeout_seconds=settings.invoices_timeout_seconds,
                    )
                ),
                settings=settings,
                policy=settings.time_policy(),
                metrics=PaymentsMetrics.register(app[METRICS].registry),
            )
            yield

    return ctx


def create_app(settings: Settings) -> web.Application:
    app = service_app(SERVICE, settings, metrics=create_metrics(SERVICE))
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_ctx(settings, MIGRATIONS))
    app.cleanup_ctx.append(outbox_ctx(settings, SERVICE))
    app.cleanup_ctx.append(consumer_ctx(settings, SERVICE, SUBSCRIPTIONS, uow_factory))
    app.cleanup_ctx.append(clients_ctx(settings))
    # Several replicas each run one: claims with FOR UPDATE SKIP LOCKED keep them off each other's attempts.
    app.cleanup_ctx.append(
        background_task_ctx(f"{SERVICE}-reconciler", lambda app: run_reconciler(app[api.CONTEXT]))
    )
    api.routes.setup(app)
    return app
