"""Faults injected on the SOAP endpoint through the control API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .errors import ErrorType

ANY_OPERATION = "*"


class FaultKind(StrEnum):
    # The connection is closed without any answer.
    UNAVAILABLE = "unavailable"
    # A proxy-style HTML error page with that status.
    HTTP_502 = "http_502"
    HTTP_503 = "http_503"
    # The answer comes only after longer than a client's timeout (the request is still carried out).
    TIMEOUT = "timeout"
    # HTTP 200 with a reply cut in the middle.
    MALFORMED_XML = "malformed_xml"
    # A PayFiP SOAP fault with the given code, HTTP 500.
    FAULT = "fault"


@dataclass
class FaultRule:
    operation: str
    kind: FaultKind
    # How many next matching calls get the fault; -1 for every call until cleared.
    remaining: int
    code: str | None = None
    error_type: ErrorType = ErrorType.FONCTIONNELLE
    # Only for TIMEOUT: overrides the configured wait.
    delay_seconds: float | None = None

    def matches(self, operation: str | None) -> bool:
        return self.remaining != 0 and (self.operation == ANY_OPERATION or self.operation == operation)

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "kind": self.kind.value,
            "code": self.code,
            "error_type": self.error_type.value,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
        }


class FaultInjector:
    """Rules in the order they were added; the first matching one is used up first."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self._rules.append(rule)

    def clear(self) -> None:
        self._rules.clear()

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def take(self, operation: str | None) -> FaultRule | None:
        """The fault for this call, if any, counting it against its rule."""
        for rule in self._rules:
            if rule.matches(operation):
                if rule.remaining > 0:
                    rule.remaining -= 1
                self._rules = [kept for kept in self._rules if kept.remaining != 0]
                return rule
        return None
