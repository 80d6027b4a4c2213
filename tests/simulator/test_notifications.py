"""Notifications to `urlnotif`, received by a real little HTTP server."""

from __future__ import annotations

import asyncio

from tests.simulator.conftest import NotificationReceiver, Simulator, wait_until


async def _paid_operation(simulator: Simulator, receiver: NotificationReceiver, **overrides: str) -> str:
    idop = await simulator.create_payment(**({"urlnotif": receiver.url} | overrides))
    await simulator.open_page(idop)
    response = await simulator.click(idop, "P")
    assert response.status == 303
    return idop


async def _attempts(simulator: Simulator) -> list[dict[str, object]]:
    attempts: list[dict[str, object]] = (await simulator.control("GET", "/notifications"))["attempts"]
    return attempts


async def _nothing_pending(simulator: Simulator) -> bool:
    pending: int = (await simulator.control("GET", "/notifications"))["pending"]
    return pending == 0


async def test_payment_notifies_urlnotif_with_an_idop_form_field(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    idop = await _paid_operation(simulator, receiver)

    [notification] = await receiver.wait_for(1)

    assert notification.method == "POST"
    assert notification.path == "/payfip/notification"
    assert notification.content_type == "application/x-www-form-urlencoded"
    assert notification.form == {"idop": idop}
    assert notification.query == {}
    await wait_until(lambda: _nothing_pending(simulator))
    [attempt] = await _attempts(simulator)
    assert attempt["idop"] == idop
    assert attempt["url"] == receiver.url
    assert attempt["field"] == "idop"
    assert attempt["status"] == 200
    assert attempt["error"] is None
    assert attempt["sent_at"] is not None


async def test_every_outcome_is_notified(simulator: Simulator, receiver: NotificationReceiver) -> None:
    idops = []
    for resultrans in ("P", "V", "R", "Z", "A"):
        idop = await simulator.create_payment(urlnotif=receiver.url)
        await simulator.force_result(idop, resultrans)
        idops.append(idop)

    await receiver.wait_for(5)

    assert sorted(receiver.ids()) == sorted(idops)


async def test_field_name_can_be_idop_with_capital_o(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"field": "idOp"})

    idop = await _paid_operation(simulator, receiver)

    [notification] = await receiver.wait_for(1)
    assert notification.form == {"idOp": idop}


async def test_id_can_be_sent_in_the_query_string(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"in_query": True})

    idop = await _paid_operation(simulator, receiver)

    [notification] = await receiver.wait_for(1)
    assert notification.query == {"idop": idop}
    assert notification.form == {}


async def test_query_string_notification_keeps_the_existing_query(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"in_query": True, "field": "idOp"})

    idop = await _paid_operation(simulator, receiver, urlnotif=f"{receiver.url}?commune=12")

    [notification] = await receiver.wait_for(1)
    assert notification.query == {"commune": "12", "idOp": idop}


async def test_drop_mode_sends_no_notification(simulator: Simulator, receiver: NotificationReceiver) -> None:
    await simulator.control("POST", "/notifications", {"mode": "drop"})

    idop = await _paid_operation(simulator, receiver)

    await asyncio.sleep(0.2)
    assert receiver.received == []
    [attempt] = await _attempts(simulator)
    assert attempt["idop"] == idop
    assert attempt["dropped"] is True
    assert attempt["sent_at"] is None


async def test_duplicate_mode_sends_two_notifications(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"mode": "duplicate"})

    idop = await _paid_operation(simulator, receiver)

    await receiver.wait_for(2)
    await asyncio.sleep(0.1)
    assert receiver.ids() == [idop, idop]


async def test_duplicate_mode_sends_the_asked_number_of_copies(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"mode": "duplicate", "copies": 3})

    idop = await _paid_operation(simulator, receiver)

    await receiver.wait_for(3)
    assert receiver.ids() == [idop, idop, idop]
    await wait_until(lambda: _nothing_pending(simulator))
    assert [attempt["copy"] for attempt in await _attempts(simulator)] == [1, 2, 3]


async def test_delay_mode_sends_after_the_redirect_and_the_delay(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"mode": "delay", "delay_seconds": 0.4})
    loop = asyncio.get_running_loop()
    started = loop.time()

    idop = await _paid_operation(simulator, receiver)

    redirected_after = loop.time() - started
    assert receiver.received == []
    await receiver.wait_for(1)
    assert loop.time() - started >= 0.4
    assert redirected_after < 0.4
    assert receiver.ids() == [idop]


async def test_reorder_mode_sends_the_newer_notification_first(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"mode": "reorder"})

    first = await _paid_operation(simulator, receiver)
    await asyncio.sleep(0.1)
    assert receiver.received == []
    assert (await simulator.control("GET", "/notifications"))["held"] == 1
    second = await _paid_operation(simulator, receiver)

    await receiver.wait_for(2)
    assert receiver.ids() == [second, first]


async def test_flush_sends_held_notifications_newest_first(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"mode": "reorder"})
    idop = await _paid_operation(simulator, receiver)

    flushed = await simulator.control("POST", "/notifications/flush")

    assert flushed["flushed"] == 1
    assert flushed["held"] == 0
    assert receiver.ids() == [idop]


async def test_before_redirect_notifies_before_the_browser_is_answered(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    await simulator.control("POST", "/notifications", {"before_redirect": True})
    idop = await simulator.create_payment(urlnotif=receiver.url)
    await simulator.open_page(idop)

    response = await simulator.click(idop, "V")

    assert response.status == 303
    assert receiver.ids() == [idop]


async def test_non_200_answer_is_recorded_and_not_retried(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    receiver.status = 500

    await _paid_operation(simulator, receiver)

    await receiver.wait_for(1)
    await wait_until(lambda: _nothing_pending(simulator))
    await asyncio.sleep(0.1)
    assert len(receiver.received) == 1
    [attempt] = await _attempts(simulator)
    assert attempt["status"] == 500


async def test_retries_can_be_asked_for(simulator: Simulator, receiver: NotificationReceiver) -> None:
    receiver.status = 503
    await simulator.control("POST", "/notifications", {"retries": 2, "retry_delay_seconds": 0.05})

    await _paid_operation(simulator, receiver)

    await receiver.wait_for(3)
    await wait_until(lambda: _nothing_pending(simulator))
    assert [attempt["attempt"] for attempt in await _attempts(simulator)] == [1, 2, 3]


async def test_unreachable_urlnotif_is_recorded_as_an_error(simulator: Simulator) -> None:
    idop = await simulator.create_payment(urlnotif="http://127.0.0.1:9/payfip/notification")
    await simulator.force_result(idop, "P")

    await wait_until(lambda: _nothing_pending(simulator))

    [attempt] = await _attempts(simulator)
    assert attempt["status"] is None
    assert attempt["error"]


async def test_forced_result_without_notify_sends_nothing(
    simulator: Simulator, receiver: NotificationReceiver
) -> None:
    idop = await simulator.create_payment(urlnotif=receiver.url)

    await simulator.force_result(idop, "P", notify=False)

    await asyncio.sleep(0.2)
    assert receiver.received == []
    assert await _attempts(simulator) == []


async def test_policy_changes_merge_and_reset_restores_the_defaults(simulator: Simulator) -> None:
    await simulator.control("POST", "/notifications", {"mode": "delay"})
    merged = await simulator.control("POST", "/notifications", {"delay_seconds": 0.5})

    assert merged["policy"]["mode"] == "delay"
    assert merged["policy"]["delay_seconds"] == 0.5

    await simulator.control("POST", "/reset")
    assert (await simulator.control("GET", "/notifications"))["policy"]["mode"] == "normal"


async def test_invalid_policy_is_refused(simulator: Simulator) -> None:
    answer = await simulator.control("POST", "/notifications", {"mode": "sometimes"}, expected_status=400)

    assert answer["error"] == "invalid body"
    await simulator.control("POST", "/notifications", {"field": "IDOP"}, expected_status=400)
    await simulator.control("POST", "/notifications", {"colour": "blue"}, expected_status=400)
