"""The PayFiP client against the simulator process, over HTTP: every outcome, the time rules, the faults.

The simulator was written from the protocol page by someone else: where the client misread the page, the
simulator refuses or warns (its request log lists ignored elements and warnings for each request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.payments.payfip import (
    PayfipClient,
    PayfipMalformedReply,
    PayfipRejected,
    PayfipResultUnknown,
    PayfipTechnicalFault,
    PayfipTimeout,
    PayfipUnavailable,
    PayfipUnknownOperation,
    PaymentRequest,
)
from tests.payments.conftest import PaymentsWorld


@pytest.fixture
async def client(world: PaymentsWorld) -> AsyncIterator[PayfipClient]:
    async with aiohttp.ClientSession() as session:
        yield PayfipClient(session, base_url=world.simulator_url, timeout_seconds=1.0)


def payment_request(**changes: object) -> PaymentRequest:
    values: dict[str, object] = {
        "exer": "2026",
        "mel": "marie.dupont@example.org",
        "montant": 3750,
        "numcli": "001964",
        "objet": "Cantine de l'école – mars",
        "refdet": "2026000000123",
        "saisie": "T",
        "urlnotif": "http://127.0.0.1:9/payfip/notification",
        "urlredirect": "http://demo.localhost:8000/reglement/retour",
    } | changes
    return PaymentRequest(**values)  # type: ignore[arg-type]


async def test_the_simulator_takes_our_requests_without_ignoring_or_warning_about_anything(
    world: PaymentsWorld, client: PayfipClient
) -> None:
    idop = await client.create_payment(payment_request())
    with pytest.raises(PayfipResultUnknown):
        await client.payment_detail(idop)
    await client.client_detail("001964")
    requests = (await world.sim("GET", "/requests"))["requests"]
    assert [r["operation"] for r in requests] == [
        "creerPaiementSecurise",
        "recupererDetailPaiementSecurise",
        "recupererDetailClient",
    ]
    for received in requests:
        assert received["ignored_elements"] == [], received
        assert received["warnings"] == [], received
        assert received["soap_action"] == '""'
        assert received["content_type"].startswith("text/xml")
    assert requests[0]["fields"] == {
        "exer": "2026",
        "mel": "marie.dupont@example.org",
        "montant": "3750",
        "numcli": "001964",
        "objet": "Cantine de l ecole mars",
        "refdet": "2026000000123",
        "saisie": "T",
        "urlnotif": "http://127.0.0.1:9/payfip/notification",
        "urlredirect": "http://demo.localhost:8000/reglement/retour",
    }


async def test_creation_gives_a_36_character_idop_and_the_payment_page_answers(
    world: PaymentsWorld, client: PayfipClient
) -> None:
    idop = await client.create_payment(payment_request())
    assert len(idop) == 36
    async with aiohttp.ClientSession() as browser, browser.get(client.payment_page_url(idop)) as page:
        assert page.status == 200
        assert "37,50" in await page.text()


@pytest.mark.parametrize("resultrans", ["P", "V", "R", "Z", "A"])
async def test_every_outcome_is_read_back_with_what_was_sent(
    world: PaymentsWorld, client: PayfipClient, resultrans: str
) -> None:
    idop = await client.create_payment(payment_request(montant=12345, numcli="010203", refdet="ABC123def"))
    await world.pay(idop, resultrans, notify=False)
    detail = await client.payment_detail(idop)
    assert detail.resultrans == resultrans
    assert (detail.idop, detail.numcli, detail.refdet, detail.montant) == (idop, "010203", "ABC123def", 12345)
    assert detail.transaction_time is not None
    if resultrans in ("P", "V"):
        assert detail.numauto
    if resultrans in ("R", "A"):
        assert detail.numauto is None


async def test_no_result_yet_is_p5_and_an_unknown_idop_is_p1(client: PayfipClient) -> None:
    idop = await client.create_payment(payment_request())
    with pytest.raises(PayfipResultUnknown) as no_result:
        await client.payment_detail(idop)
    assert no_result.value.code == "P5"
    with pytest.raises(PayfipUnknownOperation) as unknown:
        await client.payment_detail("00000000-0000-1000-8000-000000000000")
    assert unknown.value.code == "P1"


async def test_an_idop_past_its_15_minutes_still_answers_p5_then_p1_after_the_night_purge(
    world: PaymentsWorld, client: PayfipClient
) -> None:
    idop = await client.create_payment(payment_request())
    await world.sim("POST", "/clock", {"advance_seconds": 16 * 60})
    with pytest.raises(PayfipResultUnknown):
        await client.payment_detail(idop)
    await world.sim("POST", "/purge")
    with pytest.raises(PayfipUnknownOperation):
        await client.payment_detail(idop)


async def test_a_paid_result_survives_the_night_purge(world: PaymentsWorld, client: PayfipClient) -> None:
    idop = await client.create_payment(payment_request())
    await world.pay(idop, "P", notify=False)
    await world.sim("POST", "/clock", {"advance_seconds": 24 * 3600})
    await world.sim("POST", "/purge")
    assert (await client.payment_detail(idop)).resultrans == "P"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"numcli": "999999"}, {"T1", "T2"}),
        ({"mel": "marie@@example.org"}, {"A2"}),
    ],
)
async def test_payfip_refusals_at_creation_are_functional_errors_with_code_and_label(
    client: PayfipClient, changes: dict[str, object], code: set[str]
) -> None:
    with pytest.raises(PayfipRejected) as raised:
        await client.create_payment(payment_request(**changes))
    assert raised.value.code in code
    assert raised.value.libelle
    assert not isinstance(raised.value, PayfipResultUnknown | PayfipUnknownOperation)


async def test_client_detail_reads_the_regie_labels(client: PayfipClient) -> None:
    detail = await client.client_detail("001964")
    assert detail.numcli == "001964"
    assert detail.libelle_n1


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("unavailable", PayfipUnavailable),
        ("http_502", PayfipUnavailable),
        ("http_503", PayfipUnavailable),
        ("timeout", PayfipTimeout),
        ("malformed_xml", PayfipMalformedReply),
    ],
)
async def test_transport_faults_become_unavailable(
    world: PaymentsWorld, client: PayfipClient, kind: str, error: type[Exception]
) -> None:
    idop = await client.create_payment(payment_request())
    await world.sim(
        "POST", "/faults", {"operation": "recupererDetailPaiementSecurise", "kind": kind, "count": 1}
    )
    with pytest.raises(error) as raised:
        await client.payment_detail(idop)
    assert isinstance(raised.value, PayfipUnavailable)
    # The fault was one-off: the next question gets PayFiP's real answer.
    with pytest.raises(PayfipResultUnknown):
        await client.payment_detail(idop)


async def test_an_injected_technical_fault_is_unavailable_and_a_functional_one_keeps_its_code(
    world: PaymentsWorld, client: PayfipClient
) -> None:
    await world.sim(
        "POST",
        "/faults",
        {
            "operation": "creerPaiementSecurise",
            "kind": "fault",
            "code": "X1",
            "error_type": "TechIndisponibiliteErreur",
        },
    )
    with pytest.raises(PayfipTechnicalFault):
        await client.create_payment(payment_request())
    await world.sim("POST", "/faults", {"operation": "creerPaiementSecurise", "kind": "fault", "code": "R3"})
    with pytest.raises(PayfipRejected) as raised:
        await client.create_payment(payment_request())
    assert raised.value.code == "R3"


async def test_calls_are_reported_to_the_recorder_whatever_their_outcome(client: PayfipClient) -> None:
    seen = []

    async def record(call: object) -> None:
        seen.append(call)

    idop = await client.create_payment(payment_request(), record=record)
    with pytest.raises(PayfipResultUnknown):
        await client.payment_detail(idop, record=record)
    assert [(c.operation, c.outcome, c.code) for c in seen] == [  # type: ignore[attr-defined]
        ("creerPaiementSecurise", "ok", None),
        ("recupererDetailPaiementSecurise", "fault", "P5"),
    ]


async def test_the_browser_is_sent_to_the_page_address_when_it_differs_from_the_service_address() -> None:
    async with aiohttp.ClientSession() as session:
        inside = PayfipClient(session, base_url="http://payfip-simulator:8010")
        both = PayfipClient(
            session, base_url="http://payfip-simulator:8010", page_url="http://localhost:8010/"
        )
    assert inside.payment_page_url("abc") == "http://payfip-simulator:8010/tpa/paiementws.web?idop=abc"
    assert both.payment_page_url("abc") == "http://localhost:8010/tpa/paiementws.web?idop=abc"
    assert both.base_url == "http://payfip-simulator:8010"
