"""The operation store on its own, with a hand-driven clock: transitions and local times."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from tools.payfip_simulator.errors import PayFipError
from tools.payfip_simulator.state import (
    NightPurgeSchedule,
    OperationStatus,
    OperationStore,
    ResultCode,
    ShiftableClock,
)
from tools.payfip_simulator.validation import PaymentRequest

REQUEST = PaymentRequest(
    exer="2024",
    mel="jeanne.martin@example.fr",
    montant="3750",
    numcli="001964",
    objet=None,
    refdet="FAC2024000123",
    saisie="T",
    urlnotif="https://portail.example.fr/n",
    urlredirect="https://portail.example.fr/r",
)


def _store_at(moment: datetime) -> tuple[OperationStore, ShiftableClock]:
    clock = ShiftableClock(base=lambda: moment)
    return OperationStore(clock, numauto_factory=lambda: "112233445566-tip"), clock


def _code(error: pytest.ExceptionInfo[PayFipError]) -> str:
    return error.value.code


def test_status_moves_from_created_to_page_opened_to_final() -> None:
    store, _ = _store_at(datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    operation = store.create(REQUEST)
    assert store.status(operation) is OperationStatus.CREATED

    store.open_page(operation.idop)
    assert store.status(operation) is OperationStatus.PAGE_OPENED

    store.choose_on_page(operation.idop, ResultCode.PAID_BY_CARD)
    assert store.status(operation) is OperationStatus.FINAL


def test_expired_then_purged_without_a_result() -> None:
    store, clock = _store_at(datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    operation = store.create(REQUEST)
    clock.advance(15 * 60)

    assert store.status(operation) is OperationStatus.EXPIRED
    with pytest.raises(PayFipError) as expired_detail:
        store.detail(operation.idop)
    assert _code(expired_detail) == "P5"
    with pytest.raises(PayFipError) as expired_page:
        store.open_page(operation.idop)
    assert _code(expired_page) == "P4"

    assert store.purge() == [operation.idop]
    assert store.status(operation) is OperationStatus.PURGED
    with pytest.raises(PayFipError) as purged_detail:
        store.detail(operation.idop)
    assert _code(purged_detail) == "P1"


@pytest.mark.parametrize(
    ("recorded_at_utc", "dattrans", "heurtrans"),
    [
        (datetime(2024, 1, 15, 23, 30, tzinfo=UTC), "16012024", "0030"),
        (datetime(2024, 7, 1, 22, 5, tzinfo=UTC), "02072024", "0005"),
        (datetime(2024, 3, 31, 0, 59, tzinfo=UTC), "31032024", "0159"),
        (datetime(2024, 3, 31, 1, 0, tzinfo=UTC), "31032024", "0300"),
    ],
    ids=["winter UTC+1", "summer UTC+2", "just before the spring change", "just after the spring change"],
)
def test_dattrans_and_heurtrans_follow_paris_time_and_its_changes(
    recorded_at_utc: datetime, dattrans: str, heurtrans: str
) -> None:
    store, _ = _store_at(recorded_at_utc)
    operation = store.create(REQUEST)

    store.record_result(operation.idop, ResultCode.PAID_BY_DIRECT_DEBIT)

    assert operation.result is not None
    assert (operation.result.dattrans, operation.result.heurtrans) == (dattrans, heurtrans)
    assert operation.result.numauto == "112233445566-tip"


@pytest.mark.parametrize(
    "resultrans", [ResultCode.CARD_REFUSED, ResultCode.DIRECT_DEBIT_REFUSED, ResultCode.ABANDONED]
)
def test_failed_and_abandoned_results_have_no_numauto(resultrans: ResultCode) -> None:
    store, _ = _store_at(datetime(2024, 3, 1, 10, 0, tzinfo=UTC))
    operation = store.create(REQUEST)

    store.record_result(operation.idop, resultrans)

    assert operation.result is not None
    assert operation.result.numauto is None


def test_night_purge_schedule_fires_once_per_passage_of_its_paris_time() -> None:
    start = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    schedule = NightPurgeSchedule(time(3, 0), last_checked=start)

    assert schedule.due(start + timedelta(hours=6)) is False  # 19:00 Paris
    assert schedule.due(start + timedelta(hours=14, minutes=30)) is True  # 03:30 Paris, next day
    assert schedule.due(start + timedelta(hours=15)) is False
    assert schedule.due(start + timedelta(days=3)) is True
