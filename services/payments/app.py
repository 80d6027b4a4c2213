"""Composition root of the payments service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from services.payments import api
from services.payments.consumer import SUBSCRIPTIONS
from services.payments.settings import Settings
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import POOL, consumer_ctx, database_ctx, outbox_ctx, service_app
from shared.plumbing.uow import UnitOfWork

SERVICE = "payments"
MIGRATIONS = Path(__file__).parent / "migrations"
SETTINGS = web.AppKey("payments_settings", Settings)


def uow_factory(app: web.Application) -> Callable[[], UnitOfWork]:
    return lambda: UnitOfWork(app[POOL], producer=SERVICE)


def create_app(settings: Settings) -> web.Application:
    app = service_app(SERVICE, settings, metrics=create_metrics(SERVICE))
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_ctx(settings, MIGRATIONS))
    app.cleanup_ctx.append(outbox_ctx(settings, SERVICE))
    if SUBSCRIPTIONS:
        app.cleanup_ctx.append(consumer_ctx(settings, SERVICE, SUBSCRIPTIONS, uow_factory))
    api.routes.setup(app)
    return app
