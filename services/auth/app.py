"""Composition root of the auth service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from services.auth import api
from services.auth.consumer import SUBSCRIPTIONS
from services.auth.domain import load_common_passwords
from services.auth.handlers import AuthContext
from services.auth.hashing import PasswordHasher
from services.auth.repository import AuthUnitOfWork
from services.auth.settings import Settings
from shared.plumbing.logging import get_logger
from shared.plumbing.metrics import create_metrics
from shared.plumbing.runtime import (
    POOL,
    background_task_ctx,
    consumer_ctx,
    database_ctx,
    outbox_ctx,
    service_app,
)

SERVICE = "auth"
MIGRATIONS = Path(__file__).parent / "migrations"
SETTINGS = web.AppKey("auth_settings", Settings)

log = get_logger(__name__)


def uow_factory(app: web.Application) -> Callable[[], AuthUnitOfWork]:
    return lambda: AuthUnitOfWork(app[POOL], producer=SERVICE)


def context_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            threads=settings.hashing_threads,
        )
        app[api.CONTEXT] = AuthContext(settings, hasher, load_common_passwords())
        yield
        hasher.close()

    return ctx


async def forget_expired_links(app: web.Application) -> None:
    """Spent and expired links are kept a week for support questions, then deleted."""
    while True:
        with contextlib.suppress(Exception):
            async with AuthUnitOfWork(app[POOL], producer=SERVICE) as uow:
                await uow.links.forget_expired()
        await asyncio.sleep(3600)


def create_app(settings: Settings) -> web.Application:
    app = service_app(SERVICE, settings, metrics=create_metrics(SERVICE))
    app[SETTINGS] = settings
    app.cleanup_ctx.append(context_ctx(settings))
    app.cleanup_ctx.append(database_ctx(settings, MIGRATIONS))
    app.cleanup_ctx.append(outbox_ctx(settings, SERVICE))
    app.cleanup_ctx.append(background_task_ctx("forget-expired-links", forget_expired_links))
    app.cleanup_ctx.append(consumer_ctx(settings, SERVICE, SUBSCRIPTIONS, uow_factory))
    api.routes.setup(app)
    return app
