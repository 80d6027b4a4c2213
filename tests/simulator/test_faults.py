"""Faults injected through `/_control/faults`: each kind, counts, targeting and clearing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.simulator.conftest import Simulator
from tests.simulator.soap_messages import (
    SOAP_HEADERS,
    creer_paiement,
    detail_client,
    detail_paiement,
    read_fault,
    reply_fields,
)


async def test_unavailable_closes_the_connection_without_an_answer(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"operation": "*", "kind": "unavailable"})

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await simulator.soap(creer_paiement())

    assert (await simulator.soap(creer_paiement())).status == 200


@pytest.mark.parametrize(("kind", "status"), [("http_502", 502), ("http_503", 503)])
async def test_http_error_kinds_answer_a_proxy_error_page(
    simulator: Simulator, kind: str, status: int
) -> None:
    await simulator.control("POST", "/faults", {"kind": kind})

    answer = await simulator.soap(creer_paiement())

    assert answer.status == status
    assert answer.content_type == "text/html"
    assert "Envelope" not in answer.text


async def test_timeout_answers_only_after_the_client_gave_up(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"kind": "timeout", "delay_seconds": 0.5})

    with pytest.raises(asyncio.TimeoutError):
        await simulator.http.post(
            "/tpa/services/securite",
            data=creer_paiement().encode(),
            headers=SOAP_HEADERS,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )


async def test_timeout_waits_the_configured_time_then_carries_out_the_call(simulator: Simulator) -> None:
    # The fixture's settings set fault_timeout_seconds to 0.6 (the default is 20).
    await simulator.control("POST", "/faults", {"kind": "timeout"})
    loop = asyncio.get_running_loop()
    started = loop.time()

    answer = await simulator.soap(creer_paiement())

    assert loop.time() - started >= 0.6
    assert answer.status == 200
    assert len((await simulator.control("GET", "/operations"))["operations"]) == 1


async def test_malformed_xml_answers_200_with_a_reply_cut_short(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"kind": "malformed_xml"})

    answer = await simulator.soap(creer_paiement())

    assert answer.status == 200
    assert answer.content_type == "text/xml"
    assert answer.text.startswith("<?xml")
    with pytest.raises(Exception, match=r"no element found|unclosed|not well-formed"):
        reply_fields(answer.text, "creerPaiementSecurise")


async def test_fault_kind_answers_the_given_payfip_code(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.force_result(idop, "P")
    await simulator.control(
        "POST", "/faults", {"operation": "recupererDetailPaiementSecurise", "kind": "fault", "code": "P5"}
    )

    answer = await simulator.soap(detail_paiement(idop))

    assert answer.status == 500
    fault = read_fault(answer.text)
    assert fault.faultstring == "fr.gouv.finances.cp.tpa.webservice.exceptions.FonctionnelleErreur"
    assert fault.detail["code"] == "P5"
    assert fault.detail["libelle"] == "Résultat de la transaction non connu."
    assert (await simulator.soap(detail_paiement(idop))).status == 200


async def test_fault_kind_can_be_a_technical_error(simulator: Simulator) -> None:
    await simulator.control(
        "POST", "/faults", {"kind": "fault", "code": "I1", "error_type": "TechIndisponibiliteErreur"}
    )

    fault = read_fault((await simulator.soap(creer_paiement())).text)

    assert fault.faultstring == "fr.gouv.finances.cp.tpa.webservice.exceptions.TechIndisponibiliteErreur"
    assert fault.detail_type == "TechIndisponibiliteErreur"
    assert fault.detail["code"] == "I1"


async def test_fault_targets_only_its_operation(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"operation": "recupererDetailClient", "kind": "http_503"})

    assert (await simulator.soap(creer_paiement())).status == 200
    assert (await simulator.soap(detail_client("001964"))).status == 503
    assert (await simulator.soap(detail_client("001964"))).status == 200


async def test_count_gives_the_fault_to_that_many_next_calls(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"kind": "http_502", "count": 2})

    statuses = [(await simulator.soap(detail_client("001964"))).status for _ in range(3)]

    assert statuses == [502, 502, 200]
    assert (await simulator.control("GET", "/faults"))["faults"] == []


async def test_count_minus_one_lasts_until_cleared(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"kind": "http_503", "count": -1})

    statuses = [(await simulator.soap(detail_client("001964"))).status for _ in range(5)]
    cleared = await simulator.control("DELETE", "/faults")

    assert statuses == [503] * 5
    assert cleared == {"faults": []}
    assert (await simulator.soap(detail_client("001964"))).status == 200


async def test_injected_faults_show_in_the_requests_log(simulator: Simulator) -> None:
    await simulator.control("POST", "/faults", {"kind": "http_502"})

    await simulator.soap(creer_paiement())

    [request] = (await simulator.control("GET", "/requests"))["requests"]
    assert request["injected_fault"] == "http_502"
    assert request["answer"] == "http 502"
    assert request["fields"]["numcli"] == "001964"


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "fault"},
        {"kind": "explode"},
        {"kind": "http_502", "count": 0},
        {"kind": "http_502", "operation": "payer"},
        {"kind": "fault", "code": "not a code"},
    ],
    ids=["fault without code", "unknown kind", "count zero", "unknown operation", "malformed code"],
)
async def test_invalid_fault_requests_are_refused(simulator: Simulator, body: dict[str, object]) -> None:
    answer = await simulator.control("POST", "/faults", body, expected_status=400)

    assert answer["error"] == "invalid body"
