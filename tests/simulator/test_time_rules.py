"""The 15-minute window and the night purge, driven by the simulator's clock (no sleeping)."""

from __future__ import annotations

from datetime import datetime

from aiohttp.test_utils import TestClient, TestServer

from tests.simulator.conftest import Simulator, free_port, make_settings
from tests.simulator.soap_messages import detail_paiement, read_fault
from tools.payfip_simulator.app import create_app

FIFTEEN_MINUTES = 15 * 60


async def _detail_code(simulator: Simulator, idop: str) -> str | None:
    answer = await simulator.soap(detail_paiement(idop))
    return read_fault(answer.text).detail["code"] if answer.status == 500 else None


async def test_page_refused_after_fifteen_minutes(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(FIFTEEN_MINUTES)

    response = await simulator.open_page(idop)

    assert response.status == 410
    html = await response.text()
    assert "15 minutes" in html
    assert "P4" in html
    assert (await simulator.operation(idop))["status"] == "expired"


async def test_page_still_opens_just_before_fifteen_minutes(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(FIFTEEN_MINUTES - 5)

    assert (await simulator.open_page(idop)).status == 200


async def test_expired_idop_still_answers_p5(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(2 * 60 * 60)

    assert await _detail_code(simulator, idop) == "P5"


async def test_payer_who_reached_the_page_in_time_may_finish_after_the_window(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(14 * 60)
    await simulator.open_page(idop)
    await simulator.advance_clock(5 * 60)

    response = await simulator.click(idop, "P")

    assert response.status == 303
    assert await _detail_code(simulator, idop) is None


async def test_night_purge_turns_never_paid_idops_into_p1(simulator: Simulator) -> None:
    never_opened = await simulator.create_payment()
    opened_without_result = await simulator.create_payment()
    await simulator.open_page(opened_without_result)
    await simulator.advance_clock(FIFTEEN_MINUTES)

    purge = await simulator.control("POST", "/purge")

    assert sorted(purge["purged"]) == sorted([never_opened, opened_without_result])
    assert await _detail_code(simulator, never_opened) == "P1"
    assert await _detail_code(simulator, opened_without_result) == "P1"
    assert (await simulator.operation(never_opened))["status"] == "purged"
    response = await simulator.open_page(never_opened)
    assert response.status == 410


async def test_night_purge_keeps_results_queryable(simulator: Simulator) -> None:
    paid = await simulator.create_payment()
    abandoned = await simulator.create_payment()
    await simulator.force_result(paid, "P")
    await simulator.force_result(abandoned, "A")
    await simulator.advance_clock(300 * 24 * 60 * 60)

    purge = await simulator.control("POST", "/purge")

    assert purge["purged"] == []
    assert await _detail_code(simulator, paid) is None
    assert await _detail_code(simulator, abandoned) is None


async def test_night_purge_spares_idops_still_within_their_window(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    purge = await simulator.control("POST", "/purge")

    assert purge["purged"] == []
    assert await _detail_code(simulator, idop) == "P5"


async def test_purged_idop_cannot_take_a_forced_result(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(FIFTEEN_MINUTES)
    await simulator.control("POST", "/purge")

    answer = await simulator.control(
        "POST", f"/operations/{idop}/result", {"resultrans": "P"}, expected_status=409
    )

    assert answer["details"] == "P1"


async def test_configured_night_purge_runs_when_the_clock_passes_its_time() -> None:
    """The simulator is built here because the purge time is a start-up setting."""
    port = free_port()
    settings = make_settings(port, night_purge_time="03:00")
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1", port=port)) as client:
        simulator = Simulator(client, settings.public_url)
        idop = await simulator.create_payment()
        # Far enough for the window to be over and for 03:00 Paris to come at least once.
        clock = await simulator.advance_clock(26 * 60 * 60)

        assert clock["night_purge"] == [idop]
        assert await _detail_code(simulator, idop) == "P1"


async def test_clock_can_be_read_and_reset(simulator: Simulator) -> None:
    before = await simulator.control("GET", "/clock")
    advanced = await simulator.advance_clock(900)

    assert advanced["offset_seconds"] == 900
    assert datetime.fromisoformat(advanced["now"]) > datetime.fromisoformat(before["now"])

    await simulator.control("POST", "/reset")
    assert (await simulator.control("GET", "/clock"))["offset_seconds"] == 0
