"""The one path by which a payment outcome is recorded, whether the payer clicked or a test forced it."""

from __future__ import annotations

from aiohttp import web

from .keys import CLOCK, LOGGER, NIGHT_PURGE, NOTIFIER, OPERATIONS, SETTINGS
from .state import Operation, ResultCode
from .urls import append_query


def payment_page_url(app: web.Application, idop: str) -> str:
    return append_query(f"{app[SETTINGS].public_url}/tpa/paiementws.web", {"idop": idop})


def redirect_url(operation: Operation) -> str:
    """Where the browser goes after an outcome: `urlredirect` with `idop=<idOp>` added."""
    return append_query(operation.request.urlredirect, {"idop": operation.idop})


async def record_outcome(
    app: web.Application,
    idop: str,
    resultrans: ResultCode,
    *,
    from_page: bool,
    notify: bool = True,
) -> Operation:
    """Record the result, then notify `urlnotif` as the notification policy says.

    Raises `PayFipError` (P1, P3, P4) when the operation cannot take this result.
    """
    store = app[OPERATIONS]
    # The page checks that the payer reached it within the window; a forced result does not.
    record = store.choose_on_page if from_page else store.record_result
    operation = record(idop, resultrans)
    result = operation.result
    app[LOGGER].info(
        "payment_result_recorded",
        idop=idop,
        resultrans=resultrans.value,
        numauto=result.numauto if result else None,
        source="page" if from_page else "control",
        replaced=[previous.resultrans.value for previous in operation.replaced_results],
    )
    if notify:
        await app[NOTIFIER].notify(operation.idop, operation.request.urlnotif)
    return operation


def run_night_purge(app: web.Application, trigger: str) -> list[str]:
    purged = app[OPERATIONS].purge()
    app[LOGGER].info("night_purge_ran", trigger=trigger, purged=purged, purged_count=len(purged))
    return purged


def run_due_night_purge(app: web.Application) -> list[str] | None:
    """Run the automatic purge if the simulator's clock passed its time since the last look."""
    schedule = app[NIGHT_PURGE]
    if schedule is None or not schedule.due(app[CLOCK].now()):
        return None
    return run_night_purge(app, trigger="schedule")
