"""Operations known to the simulator and the rules that move them from one state to the next.

Pure Python on purpose (no aiohttp): the time rules are checked against an injectable clock, so tests
and the control API can move time instead of sleeping.

Life of an idOp:

    created --(payment page opened within the window)--> page_opened --(outcome)--> final P/V/R/Z/A
       |                                                      |
       +---------- window over, no result: expired -----------+
                      (detail still answers P5, the page is refused)
    expired --(night purge)--> purged (detail answers P1)

Results are never purged.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from .errors import payfip_error
from .validation import PaymentRequest

PARIS = ZoneInfo("Europe/Paris")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class ShiftableClock:
    """Real time plus an offset that the control API moves forward (or back)."""

    def __init__(self, base: Callable[[], datetime] = utc_now) -> None:
        self._base = base
        self.offset = timedelta()

    def now(self) -> datetime:
        return self._base() + self.offset

    def advance(self, seconds: float) -> datetime:
        self.offset += timedelta(seconds=seconds)
        return self.now()

    def reset(self) -> None:
        self.offset = timedelta()


class ResultCode(StrEnum):
    """`resultrans` values."""

    PAID_BY_CARD = "P"
    PAID_BY_DIRECT_DEBIT = "V"
    CARD_REFUSED = "R"
    DIRECT_DEBIT_REFUSED = "Z"
    ABANDONED = "A"

    @property
    def has_authorisation(self) -> bool:
        """Only payments carry an authorisation number (`numauto`)."""
        return self in (ResultCode.PAID_BY_CARD, ResultCode.PAID_BY_DIRECT_DEBIT)


class OperationStatus(StrEnum):
    CREATED = "created"
    PAGE_OPENED = "page_opened"
    EXPIRED = "expired"
    FINAL = "final"
    PURGED = "purged"


@dataclass(frozen=True)
class PaymentResult:
    resultrans: ResultCode
    numauto: str | None
    recorded_at: datetime
    # Europe/Paris local date and time, as the detail reply gives them.
    dattrans: str
    heurtrans: str

    def to_json(self) -> dict[str, Any]:
        return {
            "resultrans": self.resultrans.value,
            "numauto": self.numauto,
            "dattrans": self.dattrans,
            "heurtrans": self.heurtrans,
            "recorded_at": self.recorded_at.isoformat(),
        }


@dataclass
class Operation:
    idop: str
    request: PaymentRequest
    created_at: datetime
    expires_at: datetime
    page_opened_at: datetime | None = None
    left_without_result_at: datetime | None = None
    result: PaymentResult | None = None
    # Results replaced through the "abandon can become paid" quirk, oldest first.
    replaced_results: list[PaymentResult] = field(default_factory=list)
    purged_at: datetime | None = None


@dataclass
class Quirks:
    """Switches for the protocol points the sources disagree on, so clients can be tried on both."""

    # An A (abandoned) result may later turn into another result: the page can be reopened within
    # the window and an outcome can be forced over it.
    abandon_can_become_paid: bool = False
    # The detail reply echoes a wrong `exer` (seen on the real service).
    echo_wrong_exer: bool = False

    def to_json(self) -> dict[str, bool]:
        return {
            "abandon_can_become_paid": self.abandon_can_become_paid,
            "echo_wrong_exer": self.echo_wrong_exer,
        }


def new_idop() -> str:
    """A time-based UUID, 36 characters, like the real service's."""
    return str(uuid.uuid1())


def new_numauto() -> str:
    """An authorisation number shaped like the test-mode ones (`112233445566-tip`)."""
    return f"{secrets.randbelow(10**12):012d}-tip"


class OperationStore:
    """All operations, keyed by idOp, with the state machine's transitions."""

    def __init__(
        self,
        clock: Clock,
        *,
        payment_window: timedelta = timedelta(minutes=15),
        idop_factory: Callable[[], str] = new_idop,
        numauto_factory: Callable[[], str] = new_numauto,
    ) -> None:
        self._clock = clock
        self._payment_window = payment_window
        self._idop_factory = idop_factory
        self._numauto_factory = numauto_factory
        self._operations: dict[str, Operation] = {}
        self.quirks = Quirks()

    def reset(self) -> None:
        self._operations.clear()
        self.quirks = Quirks()

    def create(self, request: PaymentRequest) -> Operation:
        now = self._clock.now()
        idop = self._idop_factory()
        operation = Operation(
            idop=idop,
            request=request,
            created_at=now,
            expires_at=now + self._payment_window,
        )
        self._operations[idop] = operation
        return operation

    def get(self, idop: str) -> Operation | None:
        return self._operations.get(idop)

    def all(self) -> list[Operation]:
        return sorted(self._operations.values(), key=lambda operation: operation.created_at)

    def status(self, operation: Operation) -> OperationStatus:
        if operation.purged_at is not None:
            return OperationStatus.PURGED
        if operation.result is not None:
            return OperationStatus.FINAL
        if self._clock.now() >= operation.expires_at:
            return OperationStatus.EXPIRED
        if operation.page_opened_at is not None:
            return OperationStatus.PAGE_OPENED
        return OperationStatus.CREATED

    def _existing(self, idop: str) -> Operation:
        operation = self._operations.get(idop)
        if operation is None or operation.purged_at is not None:
            raise payfip_error("P1")
        return operation

    def detail(self, idop: str) -> tuple[Operation, PaymentResult]:
        """What `recupererDetailPaiementSecurise` answers: P1 unknown or purged, P5 no result yet."""
        operation = self._existing(idop)
        if operation.result is None:
            raise payfip_error("P5")
        return operation, operation.result

    def _can_be_replaced(self, operation: Operation) -> bool:
        return (
            self.quirks.abandon_can_become_paid
            and operation.result is not None
            and operation.result.resultrans is ResultCode.ABANDONED
        )

    def open_page(self, idop: str) -> Operation:
        """The payer's browser reaches the payment page.

        Raises P1 (unknown or purged), P3 (already has a result) or P4 (window over).
        """
        operation = self._existing(idop)
        if operation.result is not None and not self._can_be_replaced(operation):
            raise payfip_error("P3")
        now = self._clock.now()
        if now >= operation.expires_at:
            raise payfip_error("P4")
        if operation.page_opened_at is None:
            operation.page_opened_at = now
        return operation

    def choose_on_page(self, idop: str, resultrans: ResultCode) -> Operation:
        """The payer clicked an outcome on the page.

        A payer who opened the page in time may finish after the window: only reaching the page is
        bounded by it.
        """
        operation = self._existing(idop)
        if operation.page_opened_at is None:
            self.open_page(idop)
        return self.record_result(idop, resultrans)

    def leave_without_result(self, idop: str) -> Operation:
        operation = self._existing(idop)
        if operation.result is not None and not self._can_be_replaced(operation):
            raise payfip_error("P3")
        operation.left_without_result_at = self._clock.now()
        return operation

    def record_result(self, idop: str, resultrans: ResultCode) -> Operation:
        """Record an outcome. Raises P1 (unknown or purged) or P3 (already has a result)."""
        operation = self._existing(idop)
        if operation.result is not None:
            if not self._can_be_replaced(operation):
                raise payfip_error("P3")
            operation.replaced_results.append(operation.result)
        now = self._clock.now()
        local = now.astimezone(PARIS)
        operation.result = PaymentResult(
            resultrans=resultrans,
            numauto=self._numauto_factory() if resultrans.has_authorisation else None,
            recorded_at=now,
            dattrans=local.strftime("%d%m%Y"),
            heurtrans=local.strftime("%H%M"),
        )
        return operation

    def purge(self) -> list[str]:
        """The night purge: idOps whose window is over and that never got a result now answer P1."""
        now = self._clock.now()
        purged: list[str] = []
        for operation in self._operations.values():
            if operation.purged_at is None and operation.result is None and now >= operation.expires_at:
                operation.purged_at = now
                purged.append(operation.idop)
        return purged

    def to_json(self, operation: Operation) -> dict[str, Any]:
        request = operation.request
        return {
            "idop": operation.idop,
            "status": self.status(operation).value,
            "fields": {
                "exer": request.exer,
                "mel": request.mel,
                "montant": request.montant,
                "numcli": request.numcli,
                "objet": request.objet,
                "refdet": request.refdet,
                "saisie": request.saisie,
                "urlnotif": request.urlnotif,
                "urlredirect": request.urlredirect,
            },
            "result": operation.result.to_json() if operation.result else None,
            "replaced_results": [result.to_json() for result in operation.replaced_results],
            "created_at": operation.created_at.isoformat(),
            "expires_at": operation.expires_at.isoformat(),
            "page_opened_at": _iso(operation.page_opened_at),
            "left_without_result_at": _iso(operation.left_without_result_at),
            "purged_at": _iso(operation.purged_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


class NightPurgeSchedule:
    """Tells when the simulator's clock has passed the daily purge time (Europe/Paris)."""

    def __init__(self, purge_time: time, last_checked: datetime) -> None:
        self._purge_time = purge_time
        self._last_checked = last_checked

    def due(self, now: datetime) -> bool:
        """True once for each passage of the purge time between the previous call and `now`."""
        previous, self._last_checked = self._last_checked, now
        if now <= previous:
            return False
        if now - previous >= timedelta(days=1):
            return True
        day: date = previous.astimezone(PARIS).date()
        while day <= now.astimezone(PARIS).date():
            purge_moment = datetime.combine(day, self._purge_time, tzinfo=PARIS)
            if previous < purge_moment <= now:
                return True
            day += timedelta(days=1)
        return False


@dataclass
class ReceivedRequest:
    """One SOAP request as the simulator understood it, for `GET /_control/requests`."""

    received_at: datetime
    operation: str | None
    fields: dict[str, str | None]
    content_type: str | None
    soap_action: str | None
    # Elements the real service would not read (namespace-qualified or unknown fields).
    ignored_elements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    injected_fault: str | None = None
    # "reply", "fault <code>", "soap fault <faultcode>", or the injected fault's effect.
    answer: str | None = None
    idop: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at.isoformat(),
            "operation": self.operation,
            "fields": dict(self.fields),
            "content_type": self.content_type,
            "soap_action": self.soap_action,
            "ignored_elements": list(self.ignored_elements),
            "warnings": list(self.warnings),
            "injected_fault": self.injected_fault,
            "answer": self.answer,
            "idop": self.idop,
        }


class RequestJournal:
    def __init__(self) -> None:
        self._entries: list[ReceivedRequest] = []

    def add(self, entry: ReceivedRequest) -> ReceivedRequest:
        self._entries.append(entry)
        return entry

    def all(self) -> list[ReceivedRequest]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
