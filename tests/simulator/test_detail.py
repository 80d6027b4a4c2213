"""`recupererDetailPaiementSecurise` and `recupererDetailClient`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.simulator.conftest import Simulator
from tests.simulator.soap_messages import detail_client, detail_paiement, read_fault, reply_fields

DETAIL_FIELD_ORDER = [
    "dattrans",
    "exer",
    "heurtrans",
    "idOp",
    "mel",
    "montant",
    "numauto",
    "numcli",
    "objet",
    "refdet",
    "resultrans",
    "saisie",
]


async def _detail_code(simulator: Simulator, idop: str) -> str:
    answer = await simulator.soap(detail_paiement(idop))
    assert answer.status == 500, answer.text
    fault = read_fault(answer.text)
    assert fault.faultcode == "S:Server"
    assert fault.detail_type == "FonctionnelleErreur"
    return fault.detail["code"]


async def test_detail_answers_p5_until_a_result_exists(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    answer = await simulator.soap(detail_paiement(idop))
    assert answer.status == 500
    assert read_fault(answer.text).detail == {
        "code": "P5",
        "descriptif": "",
        "libelle": "Résultat de la transaction non connu.",
        "severite": "2",
    }
    assert (await simulator.open_page(idop)).status == 200
    assert await _detail_code(simulator, idop) == "P5"

    await simulator.force_result(idop, "P")

    assert (await simulator.soap(detail_paiement(idop))).status == 200


async def test_detail_of_an_unknown_idop_answers_p1(simulator: Simulator) -> None:
    answer = await simulator.soap(detail_paiement("cc0cb210-1cd4-11ea-8cca-0213ad91a103"))

    assert read_fault(answer.text).detail["code"] == "P1"
    assert read_fault(answer.text).detail["libelle"] == "IdOp incorrect."


async def test_detail_with_a_lowercase_idop_element_answers_p1(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.force_result(idop, "P")

    answer = await simulator.soap(detail_paiement(idop, element="idop"))

    assert read_fault(answer.text).detail["code"] == "P1"
    requests = (await simulator.control("GET", "/requests?operation=recupererDetailPaiementSecurise"))[
        "requests"
    ]
    assert requests[-1]["warnings"] == ["lowercase <idop> element: the real service answers P1"]


@pytest.mark.parametrize(
    ("resultrans", "has_numauto"),
    [("P", True), ("V", True), ("R", False), ("Z", False), ("A", False)],
)
async def test_detail_gives_each_outcome_with_numauto_only_for_payments(
    simulator: Simulator, resultrans: str, has_numauto: bool
) -> None:
    idop = await simulator.create_payment()
    await simulator.force_result(idop, resultrans)

    answer = await simulator.soap(detail_paiement(idop))

    assert answer.status == 200
    assert "<ns2:recupererDetailPaiementSecuriseResponse" in answer.text
    fields = dict(reply_fields(answer.text, "recupererDetailPaiementSecurise"))
    assert fields["resultrans"] == resultrans
    assert ("numauto" in fields) is has_numauto
    if has_numauto:
        assert fields["numauto"].endswith("-tip")
        assert fields["numauto"][:12].isdigit()


async def test_detail_fields_come_in_xsd_order_and_echo_the_request(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    await simulator.force_result(idop, "P")

    fields = reply_fields(
        (await simulator.soap(detail_paiement(idop))).text, "recupererDetailPaiementSecurise"
    )

    assert [name for name, _ in fields] == DETAIL_FIELD_ORDER
    values = dict(fields)
    assert values["idOp"] == idop
    assert values["numcli"] == "001964"
    assert values["montant"] == "3750"
    assert values["refdet"] == "FAC2024000123"
    assert values["mel"] == "jeanne.martin@example.fr"
    assert values["objet"] == "Cantine septembre 2024"
    assert values["saisie"] == "T"
    assert values["exer"] == "2024"


async def test_detail_leaves_objet_out_when_none_was_sent(simulator: Simulator) -> None:
    idop = await simulator.create_payment(objet=None)
    await simulator.force_result(idop, "V")

    fields = reply_fields(
        (await simulator.soap(detail_paiement(idop))).text, "recupererDetailPaiementSecurise"
    )

    assert "objet" not in dict(fields)
    assert [name for name, _ in fields] == [name for name in DETAIL_FIELD_ORDER if name != "objet"]


async def test_dattrans_and_heurtrans_are_europe_paris_local_time(simulator: Simulator) -> None:
    idop = await simulator.create_payment()
    operation = await simulator.force_result(idop, "P")
    recorded = datetime.fromisoformat(operation["result"]["recorded_at"]).astimezone(ZoneInfo("Europe/Paris"))

    values = dict(
        reply_fields((await simulator.soap(detail_paiement(idop))).text, "recupererDetailPaiementSecurise")
    )

    assert values["dattrans"] == recorded.strftime("%d%m%Y")
    assert values["heurtrans"] == recorded.strftime("%H%M")
    assert len(values["dattrans"]) == 8
    assert len(values["heurtrans"]) == 4


async def test_wrong_exer_quirk_echoes_another_year(simulator: Simulator) -> None:
    await simulator.control("POST", "/quirks", {"echo_wrong_exer": True})
    idop = await simulator.create_payment(exer="2024")
    await simulator.force_result(idop, "P")

    values = dict(
        reply_fields((await simulator.soap(detail_paiement(idop))).text, "recupererDetailPaiementSecurise")
    )

    assert values["exer"] == "2023"


async def test_detail_client_answers_the_configured_libelles(simulator: Simulator) -> None:
    answer = await simulator.soap(detail_client("001964"))

    assert answer.status == 200
    fields = reply_fields(answer.text, "recupererDetailClient")
    assert [name for name, _ in fields] == ["libelleN1", "libelleN2", "libelleN3", "numcli"]
    assert dict(fields)["libelleN1"] == "MAIRIE DE DEMONSTRATION"
    assert dict(fields)["numcli"] == "001964"


@pytest.mark.parametrize(
    ("numcli", "element", "code"),
    [
        ("999999", "numCli", "T2"),
        ("1964", "numCli", "T1"),
        ("001964", "numcli", "T1"),
    ],
    ids=["unknown client", "not 6 digits", "lowercase numcli element"],
)
async def test_detail_client_refuses_bad_client_numbers(
    simulator: Simulator, numcli: str, element: str, code: str
) -> None:
    answer = await simulator.soap(detail_client(numcli, element=element))

    assert answer.status == 500
    assert read_fault(answer.text).detail["code"] == code
