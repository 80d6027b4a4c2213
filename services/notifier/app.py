"""Composition root of the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from services.notifier import api
from services.notifier.consumer import subscriptions
from services.notifier.outbound import EmailSender
from services.notifier.rendering import EmailRenderer
from services.notifier.repository import NotifierUnitOfWork
from services.notifier.settings import Settings
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import METRICS, POOL, consumer_ctx, database_ctx, service_app, shutdown_of

SERVICE = "notifier"
MIGRATIONS = Path(__file__).parent / "migrations"
SETTINGS = web.AppKey("notifier_settings", Settings)
SENDER = web.AppKey("email_sender", EmailSender)


def uow_factory(app: web.Application) -> Callable[[], NotifierUnitOfWork]:
    return lambda: NotifierUnitOfWork(app[POOL], producer=SERVICE)


def create_app(settings: Settings) -> web.Application:
    app = service_app(SERVICE, settings, metrics=create_metrics(SERVICE))
    app[SETTINGS] = settings
    app.cleanup_ctx.append(database_ctx(settings, MIGRATIONS))

    async def sender_ctx(app: web.Application) -> AsyncIterator[None]:
        sender = EmailSender(app[POOL], settings, app[METRICS])
        app[SENDER] = sender
        sender.start()
        shutdown_of(app).on_begin.append(sender.stop_taking)
        yield
        await sender.stop(timeout=shutdown_of(app).remaining())

    app.cleanup_ctx.append(sender_ctx)
    # Listed last so that it stops first: no new e-mails are queued while the last ones go out.
    app.cleanup_ctx.append(
        consumer_ctx(
            settings,
            SERVICE,
            subscriptions(EmailRenderer(sender=settings.from_address, sender_name=settings.from_name)),
            uow_factory,
        )
    )
    api.routes.setup(app)
    return app
