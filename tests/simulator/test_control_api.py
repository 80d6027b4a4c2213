"""The control API: listings, forced results, reset, error answers, and `/healthz`."""

from __future__ import annotations

from tests.simulator.conftest import NotificationReceiver, Simulator
from tests.simulator.soap_messages import creer_paiement, detail_paiement, read_fault


async def test_healthz_answers_ok(simulator: Simulator) -> None:
    response = await simulator.http.get("/healthz")

    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_operations_are_listed_with_state_fields_result_and_times(simulator: Simulator) -> None:
    created = await simulator.create_payment()
    paid = await simulator.create_payment(refdet="FAC2024000124")
    await simulator.force_result(paid, "V")

    operations = (await simulator.control("GET", "/operations"))["operations"]

    assert [operation["idop"] for operation in operations] == [created, paid]
    first, second = operations
    assert first["status"] == "created"
    assert second["status"] == "final"
    assert second["fields"]["refdet"] == "FAC2024000124"
    assert second["result"]["resultrans"] == "V"
    for operation in operations:
        assert operation["created_at"] < operation["expires_at"]


async def test_unknown_operation_is_a_404(simulator: Simulator) -> None:
    answer = await simulator.control("GET", "/operations/nope", expected_status=404)

    assert "unknown idop" in answer["error"]
    await simulator.control("POST", "/operations/nope/result", {"resultrans": "P"}, expected_status=404)


async def test_forced_result_answers_the_operation_and_its_redirect(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    operation = await simulator.force_result(idop, "P")

    assert operation["status"] == "final"
    assert operation["result"]["resultrans"] == "P"
    assert operation["result"]["numauto"].endswith("-tip")
    assert operation["redirect_url"] == f"http://127.0.0.1:9/paiement/retour?idop={idop}"


async def test_forced_result_works_without_the_page_even_after_the_window(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.advance_clock(20 * 60)

    operation = await simulator.force_result(idop, "A")

    assert operation["result"]["resultrans"] == "A"
    assert operation["page_opened_at"] is None


async def test_second_forced_result_is_a_conflict(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.force_result(idop, "R")

    answer = await simulator.control(
        "POST", f"/operations/{idop}/result", {"resultrans": "P"}, expected_status=409
    )

    assert answer["details"] == "P3"


async def test_forced_result_can_turn_an_abandon_into_a_payment_with_the_quirk(simulator: Simulator) -> None:
    quirks = await simulator.control("POST", "/quirks", {"abandon_can_become_paid": True})
    assert quirks == {"abandon_can_become_paid": True, "echo_wrong_exer": False}
    idop = await simulator.create_payment()
    await simulator.force_result(idop, "A")

    operation = await simulator.force_result(idop, "P")

    assert operation["result"]["resultrans"] == "P"


async def test_invalid_forced_result_is_refused(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    await simulator.control("POST", f"/operations/{idop}/result", {"resultrans": "X"}, expected_status=400)
    response = await simulator.http.post(f"/_control/operations/{idop}/result", data=b"{not json")
    assert response.status == 400
    assert (await response.json())["error"] == "the body is not valid JSON"


async def test_requests_can_be_filtered_by_operation(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.soap(detail_paiement(idop))

    creations = (await simulator.control("GET", "/requests?operation=creerPaiementSecurise"))["requests"]
    details = (await simulator.control("GET", "/requests?operation=recupererDetailPaiementSecurise"))[
        "requests"
    ]

    assert [request["operation"] for request in creations] == ["creerPaiementSecurise"]
    assert details[0]["fields"] == {"idOp": idop}
    assert details[0]["answer"] == "fault P5"


async def test_reset_forgets_everything(simulator: Simulator, receiver: NotificationReceiver) -> None:
    idop = await simulator.create_payment(urlnotif=receiver.url)
    await simulator.force_result(idop, "P")
    await receiver.wait_for(1)
    await simulator.control("POST", "/faults", {"kind": "http_503", "count": -1})
    await simulator.control("POST", "/notifications", {"mode": "drop"})
    await simulator.control("POST", "/quirks", {"echo_wrong_exer": True})
    await simulator.advance_clock(3600)

    assert await simulator.control("POST", "/reset") == {"status": "reset"}

    assert (await simulator.control("GET", "/operations"))["operations"] == []
    assert (await simulator.control("GET", "/requests"))["requests"] == []
    assert (await simulator.control("GET", "/faults"))["faults"] == []
    notifications = await simulator.control("GET", "/notifications")
    assert notifications["attempts"] == []
    assert notifications["policy"]["mode"] == "normal"
    assert (await simulator.control("GET", "/quirks"))["echo_wrong_exer"] is False
    assert (await simulator.control("GET", "/clock"))["offset_seconds"] == 0
    assert read_fault((await simulator.soap(detail_paiement(idop))).text).detail["code"] == "P1"
    assert (await simulator.soap(creer_paiement())).status == 200
