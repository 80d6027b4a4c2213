"""`create_app`: the PayFiP simulator as an aiohttp application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import time, timedelta
from pathlib import Path

import jinja2
import structlog
from aiohttp import web

from .control import add_routes as add_control_routes
from .control import control_errors_middleware
from .faults import FaultInjector
from .keys import (
    CLOCK,
    FAULTS,
    LOGGER,
    NIGHT_PURGE,
    NOTIFIER,
    OPERATIONS,
    REQUESTS,
    SETTINGS,
    TEMPLATES,
)
from .notifications import NotificationDispatcher, NotificationPolicy
from .outcomes import run_due_night_purge
from .pages import PAGE_PATH, choose_outcome, show_payment_page
from .service import handle_soap
from .settings import SimulatorSettings
from .state import NightPurgeSchedule, OperationStore, RequestJournal, ShiftableClock

SOAP_PATH = "/tpa/services/securite"
TEMPLATES_DIR = Path(__file__).parent / "templates"


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _notification_sender(app: web.Application) -> AsyncIterator[None]:
    notifier = app[NOTIFIER]
    await notifier.start()
    yield
    await notifier.stop()


async def _night_purge_loop(app: web.Application) -> None:
    interval = app[SETTINGS].night_purge_check_seconds
    while True:
        await asyncio.sleep(interval)
        run_due_night_purge(app)


async def _automatic_night_purge(app: web.Application) -> AsyncIterator[None]:
    if app[NIGHT_PURGE] is None:
        yield
        return
    task = asyncio.create_task(_night_purge_loop(app), name="payfip-night-purge")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(settings: SimulatorSettings) -> web.Application:
    """A fresh simulator: its own clock, operations, faults and notification sender."""
    app = web.Application(middlewares=[control_errors_middleware])
    log = structlog.get_logger("payfip_simulator")
    clock = ShiftableClock()

    app[SETTINGS] = settings
    app[LOGGER] = log
    app[CLOCK] = clock
    app[OPERATIONS] = OperationStore(clock, payment_window=timedelta(seconds=settings.payment_window_seconds))
    app[REQUESTS] = RequestJournal()
    app[FAULTS] = FaultInjector()
    app[NOTIFIER] = NotificationDispatcher(
        default_policy=NotificationPolicy(
            field=settings.notification_field, in_query=settings.notification_in_query
        ),
        timeout_seconds=settings.notification_timeout_seconds,
        clock=clock,
        log=log,
    )
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    night_purge: NightPurgeSchedule | None = None
    if settings.night_purge_time is not None:
        hours, minutes = (int(part) for part in settings.night_purge_time.split(":"))
        night_purge = NightPurgeSchedule(time(hours, minutes), last_checked=clock.now())
    app[NIGHT_PURGE] = night_purge

    app.router.add_post(SOAP_PATH, handle_soap)
    app.router.add_get(PAGE_PATH, show_payment_page)
    app.router.add_post(PAGE_PATH, choose_outcome)
    app.router.add_get("/healthz", healthz)
    add_control_routes(app.router)

    app.cleanup_ctx.append(_notification_sender)
    app.cleanup_ctx.append(_automatic_night_purge)
    return app
