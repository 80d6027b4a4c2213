"""Building blocks of a service's composition root: typed app keys and cleanup contexts.

A service's `create_app(settings)` lists the contexts it needs; aiohttp opens them in order at start-up
and closes them in reverse order at shutdown.

On SIGTERM (or SIGINT), in this order:
1. aiohttp closes the listening socket: no new connections; idle keep-alive connections are closed.
2. `on_shutdown`: the shutdown budget (`shutdown_timeout_seconds`) starts, and the consumer asks the
   broker for no more messages (and the notifier's senders take no new e-mail): from here on the process
   only finishes what it holds.
3. aiohttp waits for the requests in flight to be answered (at most the budget).
4. Cleanup contexts close in reverse order: the consumer waits for the messages in hand to commit and be
   acknowledged, background workers finish the item in hand, the outbox relay finishes its batch and makes
   a last pass so that events committed by those requests and messages leave now, then the pool closes.
Each wait uses what is left of the budget, so a process exits within about `shutdown_timeout_seconds`
of the signal; Kubernetes' terminationGracePeriodSeconds is set above that (deploy/kubernetes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
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


class Shutdown:
    """When the process was told to stop, what to do at once, and how much of its budget is left."""

    def __init__(self, budget_seconds: float) -> None:
        self.budget_seconds = budget_seconds
        self._deadline: float | None = None
        # Run as soon as the signal arrives: each stops taking new work (never waits for work in hand).
        self.on_begin: list[Callable[[], Awaitable[None]]] = []

    @property
    def begun(self) -> bool:
        return self._deadline is not None

    async def begin(self) -> None:
        if self._deadline is not None:
            return
        self._deadline = asyncio.get_running_loop().time() + self.budget_seconds
        log.info("shutdown_started", budget_seconds=self.budget_seconds)
        for stop_taking in self.on_begin:
            try:
                await stop_taking()
            except Exception as error:  # one failing step must not keep the others from running
                log.warning("shutdown_step_failed", step=repr(stop_taking), error=repr(error))

    def remaining(self, minimum: float = 1.0) -> float:
        """Seconds left of the budget, never less than `minimum` (a last short chance for each step)."""
        if self._deadline is None:  # cleanup without a signal (start-up failed, tests): the whole budget
            return self.budget_seconds
        return max(self._deadline - asyncio.get_running_loop().time(), minimum)


SHUTDOWN = web.AppKey("shutdown", Shutdown)


def shutdown_of(app: web.Application) -> Shutdown:
    """The app's shutdown budget; apps built without `service_app` get one on first use."""
    if SHUTDOWN not in app:
        app[SHUTDOWN] = Shutdown(15.0)
    return app[SHUTDOWN]


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
    app[SHUTDOWN] = Shutdown(settings.shutdown_timeout_seconds)

    async def begin_shutdown(app: web.Application) -> None:
        await app[SHUTDOWN].begin()

    app.on_shutdown.append(begin_shutdown)

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
            waiting, age = await relay.backlog_and_age()
            app[METRICS].outbox_backlog.set(waiting)
            app[METRICS].outbox_oldest_age.set(age)

        app[METRICS].refreshers.append(refresh_backlog)
        task = asyncio.create_task(relay.run(), name=f"{service}-outbox-relay")
        yield
        # Closed after the requests and the consumer have finished: the events they committed leave now.
        await relay.stop(task, timeout=shutdown_of(app).remaining(minimum=2.0))
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
        shutdown_of(app).on_begin.append(consumer.stop_consuming)
        yield
        await consumer.stop(timeout=shutdown_of(app).remaining())

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
    log.info("process_stopped")
