"""Typed keys of what hangs off the simulator's `web.Application`.

Keys, not state: each application built by `create_app` gets its own objects under them.
"""

from __future__ import annotations

import jinja2
from aiohttp import web
from structlog.typing import FilteringBoundLogger

from .faults import FaultInjector
from .notifications import NotificationDispatcher
from .settings import SimulatorSettings
from .state import NightPurgeSchedule, OperationStore, RequestJournal, ShiftableClock

SETTINGS = web.AppKey("settings", SimulatorSettings)
CLOCK = web.AppKey("clock", ShiftableClock)
OPERATIONS = web.AppKey("operations", OperationStore)
REQUESTS = web.AppKey("requests", RequestJournal)
FAULTS = web.AppKey("faults", FaultInjector)
NOTIFIER = web.AppKey("notifier", NotificationDispatcher)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
# A Protocol is not a concrete class, so the type goes through the generic parameter.
LOGGER = web.AppKey[FilteringBoundLogger]("logger")
# None when no automatic night purge is configured.
NIGHT_PURGE = web.AppKey[NightPurgeSchedule | None]("night_purge")
