"""The control API under `/_control/`, for tests and benchmarks (JSON in, JSON out).

Errors are answered as `{"error": "...", "details": ...}` with a 4xx status.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ErrorType, PayFipError
from .faults import FaultKind, FaultRule
from .keys import CLOCK, FAULTS, LOGGER, NOTIFIER, OPERATIONS, REQUESTS
from .outcomes import payment_page_url, record_outcome, redirect_url, run_due_night_purge, run_night_purge
from .soap import OPERATIONS as SOAP_OPERATIONS
from .state import Operation, ResultCode

PREFIX = "/_control"

ModelT = TypeVar("ModelT", bound=BaseModel)


class ForcedResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resultrans: ResultCode
    notify: bool = True


class FaultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: Literal[
        "creerPaiementSecurise",
        "recupererDetailPaiementSecurise",
        "recupererDetailClient",
        "*",
    ] = "*"
    kind: FaultKind
    code: str | None = Field(default=None, pattern=r"^[A-Z][0-9]$")
    error_type: ErrorType = ErrorType.FONCTIONNELLE
    count: int = Field(default=1, ge=-1)
    delay_seconds: float | None = Field(default=None, ge=0, le=600)

    @model_validator(mode="after")
    def _check_consistency(self) -> FaultRequest:
        if self.count == 0:
            raise ValueError("count must be positive, or -1 for every call until cleared")
        if self.kind is FaultKind.FAULT and self.code is None:
            raise ValueError('kind "fault" needs a code, e.g. "P5"')
        return self


class ClockChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    advance_seconds: float


class QuirksChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    abandon_can_become_paid: bool | None = None
    echo_wrong_exer: bool | None = None


class ControlError(Exception):
    """Turned into a JSON error answer by `control_errors_middleware`."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


@web.middleware
async def control_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as error:
        return web.json_response({"error": error.message, "details": error.details}, status=error.status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError as error:
        raise ControlError(400, "the body is not valid JSON", str(error)) from error
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _validate(model: type[ModelT], body: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise ControlError(
            400, "invalid body", error.errors(include_url=False, include_context=False)
        ) from error


def _operation_json(app: web.Application, operation: Operation) -> dict[str, Any]:
    return app[OPERATIONS].to_json(operation) | {
        "payment_page_url": payment_page_url(app, operation.idop),
        "redirect_url": redirect_url(operation),
    }


async def reset(request: web.Request) -> web.Response:
    app = request.app
    await app[NOTIFIER].reset()
    app[OPERATIONS].reset()
    app[REQUESTS].clear()
    app[FAULTS].clear()
    app[CLOCK].reset()
    app[LOGGER].info("simulator_reset")
    return web.json_response({"status": "reset"})


async def list_operations(request: web.Request) -> web.Response:
    app = request.app
    return web.json_response(
        {"operations": [_operation_json(app, operation) for operation in app[OPERATIONS].all()]}
    )


def _known_operation(request: web.Request) -> Operation:
    idop = request.match_info["idop"]
    operation = request.app[OPERATIONS].get(idop)
    if operation is None:
        raise ControlError(404, f"unknown idop {idop}")
    return operation


async def get_operation(request: web.Request) -> web.Response:
    return web.json_response(_operation_json(request.app, _known_operation(request)))


async def force_result(request: web.Request) -> web.Response:
    """As if the payer had clicked the outcome, without the 15-minute window (tests set the time)."""
    operation = _known_operation(request)
    forced = _validate(ForcedResult, await _json_body(request))
    try:
        operation = await record_outcome(
            request.app, operation.idop, forced.resultrans, from_page=False, notify=forced.notify
        )
    except PayFipError as error:
        raise ControlError(409, f"the operation cannot take a result: {error}", error.code) from error
    return web.json_response(_operation_json(request.app, operation))


def _notifications_json(app: web.Application) -> dict[str, Any]:
    notifier = app[NOTIFIER]
    return {
        "policy": notifier.policy.model_dump(mode="json"),
        "held": notifier.held_count,
        "pending": notifier.pending_count,
        "attempts": [attempt.to_json() for attempt in notifier.attempts],
    }


async def set_notification_policy(request: web.Request) -> web.Response:
    notifier = request.app[NOTIFIER]
    try:
        policy = notifier.update_policy(await _json_body(request))
    except ValidationError as error:
        raise ControlError(
            400, "invalid body", error.errors(include_url=False, include_context=False)
        ) from error
    request.app[LOGGER].info("notification_policy_changed", **policy.model_dump(mode="json"))
    return web.json_response(_notifications_json(request.app))


async def list_notifications(request: web.Request) -> web.Response:
    return web.json_response(_notifications_json(request.app))


async def flush_notifications(request: web.Request) -> web.Response:
    sent = await request.app[NOTIFIER].flush()
    return web.json_response({"flushed": sent} | _notifications_json(request.app))


def _faults_json(app: web.Application) -> dict[str, Any]:
    return {"faults": [rule.to_json() for rule in app[FAULTS].rules()]}


async def add_fault(request: web.Request) -> web.Response:
    wanted = _validate(FaultRequest, await _json_body(request))
    request.app[FAULTS].add(
        FaultRule(
            operation=wanted.operation,
            kind=wanted.kind,
            remaining=wanted.count,
            code=wanted.code,
            error_type=wanted.error_type,
            delay_seconds=wanted.delay_seconds,
        )
    )
    request.app[LOGGER].info("fault_rule_added", **wanted.model_dump(mode="json"))
    return web.json_response(_faults_json(request.app))


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response(_faults_json(request.app))


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    request.app[LOGGER].info("fault_rules_cleared")
    return web.json_response(_faults_json(request.app))


def _clock_json(app: web.Application) -> dict[str, Any]:
    clock = app[CLOCK]
    return {"now": clock.now().isoformat(), "offset_seconds": clock.offset.total_seconds()}


async def advance_clock(request: web.Request) -> web.Response:
    change = _validate(ClockChange, await _json_body(request))
    now = request.app[CLOCK].advance(change.advance_seconds)
    request.app[LOGGER].info("clock_advanced", advance_seconds=change.advance_seconds, now=now.isoformat())
    # A configured night purge whose time the jump went past runs now, not at the next real check.
    purged = run_due_night_purge(request.app)
    return web.json_response(_clock_json(request.app) | {"night_purge": purged})


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request.app))


async def purge(request: web.Request) -> web.Response:
    return web.json_response({"purged": run_night_purge(request.app, trigger="control")})


async def list_requests(request: web.Request) -> web.Response:
    entries = request.app[REQUESTS].all()
    operation = request.query.get("operation")
    if operation is not None:
        if operation not in SOAP_OPERATIONS:
            raise ControlError(400, f"unknown operation {operation}")
        entries = [entry for entry in entries if entry.operation == operation]
    return web.json_response({"requests": [entry.to_json() for entry in entries]})


async def get_quirks(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPERATIONS].quirks.to_json())


async def set_quirks(request: web.Request) -> web.Response:
    change = _validate(QuirksChange, await _json_body(request))
    quirks = request.app[OPERATIONS].quirks
    if change.abandon_can_become_paid is not None:
        quirks.abandon_can_become_paid = change.abandon_can_become_paid
    if change.echo_wrong_exer is not None:
        quirks.echo_wrong_exer = change.echo_wrong_exer
    request.app[LOGGER].info("quirks_changed", **quirks.to_json())
    return web.json_response(quirks.to_json())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(f"{PREFIX}/reset", reset)
    router.add_get(f"{PREFIX}/operations", list_operations)
    router.add_get(f"{PREFIX}/operations/{{idop}}", get_operation)
    router.add_post(f"{PREFIX}/operations/{{idop}}/result", force_result)
    router.add_get(f"{PREFIX}/notifications", list_notifications)
    router.add_post(f"{PREFIX}/notifications", set_notification_policy)
    router.add_post(f"{PREFIX}/notifications/flush", flush_notifications)
    router.add_get(f"{PREFIX}/faults", list_faults)
    router.add_post(f"{PREFIX}/faults", add_fault)
    router.add_delete(f"{PREFIX}/faults", clear_faults)
    router.add_get(f"{PREFIX}/clock", get_clock)
    router.add_post(f"{PREFIX}/clock", advance_clock)
    router.add_post(f"{PREFIX}/purge", purge)
    router.add_get(f"{PREFIX}/requests", list_requests)
    router.add_get(f"{PREFIX}/quirks", get_quirks)
    router.add_post(f"{PREFIX}/quirks", set_quirks)
