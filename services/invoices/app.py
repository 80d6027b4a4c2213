"""Composition root of the invoices service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from services.invoices import api
from services.invoices.consumer import SUBSCRIPTIONS
from services.invoices.repository import InvoicesUnitOfWork
from services.invoices.settings import SETTINGS, Settings
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import POOL, consumer_ctx, database_ctx, outbox_ctx, service_app

SERVICE = "invoices"
MIGRATIONS = Path(__file__).parent / "migrations"


def uow_factory(app: web.Application) -> Callable[[], InvoicesUnitOfWork]:
    return lambda: InvoicesUnitOfWork(app[POOL], producer=SERVICE)


def create_app(settings: Settings) -> web.Application:
    app = service_app(
        SERVICE,
        settings,
        metrics=create_metrics(SERVICE),
        open_prefixes=("/office/",),
        client_max_size=settings.max_body_bytes,  # invoice files, zips of PDFs
    )
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_ctx(settings, MIGRATIONS))
    app.cleanup_ctx.append(outbox_ctx(settings, SERVICE))
    if SUBSCRIPTIONS:
        app.cleanup_ctx.append(consumer_ctx(settings, SERVICE, SUBSCRIPTIONS, uow_factory))
    api.routes.setup(app)
    app.router.add_get("/office/openapi.json", api.get_office_openapi)
    return app
