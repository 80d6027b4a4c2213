"""structlog JSON logs carrying the service, the correlation id and the event id.

The correlation id lives in a context variable: the HTTP middleware sets it from the incoming request's
header, the consumer sets it from the envelope, and both the outbox and the service HTTP clients read it,
so one resident's click can be followed across every service's logs.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

CORRELATION_HEADER = "X-Correlation-ID"
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_VALID_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def clean_correlation_id(candidate: str | None) -> str:
    """Keep a caller's id when it is sane, otherwise start a new one (it ends up in logs and headers)."""
    if candidate and _VALID_CORRELATION.match(candidate):
        return candidate
    return new_correlation_id()


def current_correlation_id() -> str:
    """The id of the request or event being handled; a fresh one for work that starts on its own."""
    value = _correlation_id.get()
    if value is None:
        value = new_correlation_id()
        bind_correlation_id(value)
    return value


def bind_correlation_id(value: str) -> None:
    _correlation_id.set(value)
    structlog.contextvars.bind_contextvars(correlation_id=value)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind values (correlation id, event id…) for the duration of one unit of work."""
    token = None
    if "correlation_id" in values and values["correlation_id"] is not None:
        token = _correlation_id.set(values["correlation_id"])
    with structlog.contextvars.bound_contextvars(**values):
        try:
            yield
        finally:
            if token is not None:
                _correlation_id.reset(token)


def configure_logging(service: str, *, level: str = "INFO", json: bool = True) -> None:
    """Send structlog and the standard library's loggers (aiohttp, aio-pika) to stdout as JSON lines."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Their INFO lines repeat what our own events say better.
    for noisy in ("aiormq", "aio_pika", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
