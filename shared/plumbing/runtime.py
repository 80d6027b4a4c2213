"""Building blocks of a service's composition root: typed app keys and cleanup contexts.

A service's `create_app(settings)` lists the contexts it needs; aiohttp opens them in order at start-up
and closes them in reverse order at shutdown, so on SIGTERM the consumer stops taking messages and
finishes the ones in hand before the pool it writes through is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from aiohttp import web

from shared.plumbing import db
from shared.plumbing.bus import Publisher
from shared.plumbing.inbox import EventConsumer, Subscription
from shared.plumbing.logging import get_logger
from shared.plumbing.metrics import Metrics
from shared.plumbing.outbox import OutboxRelay
from shared.plumbing.settings import ServiceSettings
from shared.plumbing.uow import UnitOfWork
from shared.plumbing.web import (
    add_health_routes,
    correlation_middleware,
    internal_token_middleware,
    json_error_middleware,
    metrics_middleware,
)

log = get_logger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

# aiohttp answers a request line or header past its limits with a bare text 400 before any middleware
# can shape it; long query strings (filters, fuzzers) fit under these.
HTTP_LIMITS = {"max_line_size": 65536, "max_field_size": 16384}

POOL = web.AppKey("db_pool", asyncpg.Pool)
PUBLISHER = web.AppKey("publisher", Publisher)
RELAY = web.AppKey("outbox_relay", OutboxRelay)
CONSUMER = web.AppKey("consumer", EventConsumer)
METRICS = web.AppKey("metrics", Metrics)


def service_app(
    service: str,
    settings: ServiceSettings,
    *,
    metrics: Metrics,
    open_prefixes: tuple[str, ...] = (),
    client_max_size: int = 1024**2,
) -> web.Application:
    """An application with the shared middlewares and the health, readiness and metrics routes."""
    middlewares = [correlation_middleware, metrics_middleware(metrics), json_error_middleware]
    if settings.internal_token is not None:
        middlewares.append(
            internal_token_middleware(settings.internal_token.get_secret_value(), open_prefixes=open_prefixes)
        )
    app = web.Application(middlewares=middlewares, client_max_size=client_max_size, handler_args=HTTP_LIMITS)
    app[METRICS] = metrics

    async def database_ready() -> bool:
        return bool(await app[POOL].fetchval("SELECT true"))

    async def broker_ready() -> bool:
        publisher_ok = PUBLISHER not in app or app[PUBLISHER].is_connected
        consumer_ok = CONSUMER not in app or app[CONSUMER].is_connected
        return publisher_ok and consumer_ok

    add_health_routes(app, metrics=metrics, checks={"database": database_ready, "broker": broker_ready})
    return app


def database_ctx(settings: ServiceSettings, migrations: Path) -> CleanupCtx:
    """Migrate (plumbing tables first, then the service's own), then open the pool."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await db.migrate(settings.database_url, {"plumbing": db.PLUMBING_MIGRATIONS, "service": migrations})
        pool = await db.create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        app[POOL] = pool
        yield
        await pool.close()

    return ctx


def outbox_ctx(settings: ServiceSettings, service: str) -> CleanupCtx:
    """A publisher connection and the relay task that empties the outbox through it."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        publisher = Publisher(settings.amqp_url, settings.exchange, connection_name=f"{service}-publisher")
        await publisher.start()
        relay = OutboxRelay(
            app[POOL],
            publisher,
            listen_dsn=settings.database_url,
            sweep_seconds=settings.outbox_sweep_seconds,
            batch_size=settings.outbox_batch_size,
            retention_seconds=settings.outbox_retention_seconds,
            metrics=app[METRICS],
        )
        app[PUBLISHER] = publisher
        app[RELAY] = relay

        async def refresh_backlog() -> None:
            app[METRICS].outbox_backlog.set(await relay.backlog())

        app[METRICS].refreshers.append(refresh_backlog)
        task = asyncio.create_task(relay.run(), name=f"{service}-outbox-relay")
        yield
        # Last pass so events committed by the requests and messages that just finished leave now.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.publish_pending(), 5)
        await publisher.close()

    return ctx


def consumer_ctx(
    settings: ServiceSettings,
    service: str,
    subscriptions: Sequence[Subscription],
    uow_factory: Callable[[web.Application], Callable[[], UnitOfWork]],
) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        consumer = EventConsumer(
            amqp_url=settings.amqp_url,
            exchange=settings.exchange,
            queue=f"{settings.queue_prefix}.{service}",
            subscriptions=subscriptions,
            uow_factory=uow_factory(app),
            delivery_limit=settings.delivery_limit,
            prefetch=settings.consumer_prefetch,
            connection_name=f"{service}-consumer",
            metrics=app[METRICS],
        )
        await consumer.start()
        app[CONSUMER] = consumer

        async def refresh_dead_letters() -> None:
            app[METRICS].dead_letter_depth.set(await consumer.dead_letter_depth())

        app[METRICS].refreshers.append(refresh_dead_letters)
        yield
        await consumer.stop(timeout=settings.shutdown_timeout_seconds)

    return ctx


def background_task_ctx(
    name: str, make: Callable[[web.Application], Coroutine[Any, Any, None]]
) -> CleanupCtx:
    """Run a long-lived coroutine (a reconciler, a sender) for the app's lifetime; cancel it on exit."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(make(app), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def run_service(app_factory: Callable[[], web.Application], settings: _ProcessSettings) -> None:
    """Serve until SIGINT/SIGTERM; aiohttp then stops accepting, drains requests and runs cleanups."""
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # uvloop is a speed-up, not a requirement
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app_factory(),
        loop=loop,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,
        print=None,
        handle_signals=True,
    )


class _ProcessSettings(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def log_level(self) -> str: ...
    @property
    def log_json(self) -> bool: ...
    @property
    def shutdown_timeout_seconds(self) -> float: ...


def serve(
    service: str,
    settings_class: Callable[[], _ProcessSettings],
    create_app: Callable[[Any], web.Application],
) -> None:
    """What every service's `__main__` does: read settings, configure logs, serve."""
    from shared.plumbing.logging import configure_logging

    settings = settings_class()
    configure_logging(service, level=settings.log_level, json=settings.log_json)
    run_service(lambda: create_app(settings), settings)
