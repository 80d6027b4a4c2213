"""`creerPaiementSecurise`: replies, validation faults and what the simulator records."""

from __future__ import annotations

import uuid

import pytest

from tests.simulator.conftest import Simulator
from tests.simulator.soap_messages import SOAP_ENV, creer_paiement, read_fault, reply_fields

CREATION_REQUEST = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:pai="http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/contrat_paiement_securise/PaiementSecuriseService">
  <soapenv:Header/>
  <soapenv:Body>
    <pai:creerPaiementSecurise>
      <arg0>
        <exer>2024</exer>
        <mel>jeanne.martin@example.fr</mel>
        <montant>3750</montant>
        <numcli>001964</numcli>
        <objet>Cantine septembre 2024</objet>
        <refdet>FAC2024000123</refdet>
        <saisie>T</saisie>
        <urlnotif>https://portail.example.fr/payfip/notification</urlnotif>
        <urlredirect>https://portail.example.fr/paiement/retour</urlredirect>
      </arg0>
    </pai:creerPaiementSecurise>
  </soapenv:Body>
</soapenv:Envelope>
"""


async def test_creation_answers_a_time_based_idop_in_the_service_namespace(simulator: Simulator) -> None:
    answer = await simulator.soap(CREATION_REQUEST)

    assert answer.status == 200
    assert answer.content_type == "text/xml"
    assert "<ns2:creerPaiementSecuriseResponse" in answer.text
    [(name, idop)] = reply_fields(answer.text, "creerPaiementSecurise")
    assert name == "idOp"
    assert len(idop) == 36
    assert uuid.UUID(idop).version == 1


async def test_each_creation_gets_its_own_idop(simulator: Simulator) -> None:
    first = await simulator.create_payment()
    second = await simulator.create_payment()

    assert first != second


async def test_created_operation_keeps_the_fields_as_sent(simulator: Simulator) -> None:
    idop = await simulator.create_payment()

    operation = await simulator.operation(idop)

    assert operation["status"] == "created"
    assert operation["fields"]["numcli"] == "001964"
    assert operation["fields"]["montant"] == "3750"
    assert operation["fields"]["objet"] == "Cantine septembre 2024"
    assert operation["result"] is None
    assert operation["payment_page_url"] == f"{simulator.base_url}/tpa/paiementws.web?idop={idop}"


async def test_requests_log_shows_numcli_as_the_client_sent_it(simulator: Simulator) -> None:
    await simulator.create_payment()

    [request] = (await simulator.control("GET", "/requests"))["requests"]

    assert request["operation"] == "creerPaiementSecurise"
    assert request["fields"]["numcli"] == "001964"
    assert request["soap_action"] == '""'
    assert request["content_type"].startswith("text/xml")
    assert request["answer"] == "reply"
    assert request["warnings"] == []


async def test_requests_log_warns_about_an_objet_that_was_not_cleaned(simulator: Simulator) -> None:
    await simulator.create_payment(objet="Cantine d'été  -  Élève")

    [request] = (await simulator.control("GET", "/requests"))["requests"]

    assert request["fields"]["objet"] == "Cantine d'été  -  Élève"
    assert "objet has characters outside [A-Za-z0-9 ]" in request["warnings"]
    assert "objet has runs of spaces or leading/trailing spaces" in request["warnings"]


@pytest.mark.parametrize(
    ("overrides", "code", "libelle"),
    [
        pytest.param({"mel": None}, "A1", None, id="mel missing"),
        pytest.param({"mel": ""}, "A1", None, id="mel empty"),
        pytest.param({"mel": "pas-une-adresse"}, "A2", "Adresse mél incorrecte.", id="mel malformed"),
        pytest.param({"mel": "a@b.f"}, "A2", "Adresse mél incorrecte.", id="mel under 6 characters"),
        pytest.param({"mel": "x" * 75 + "@example.fr"}, "A2", "Adresse mél incorrecte.", id="mel over 80"),
        pytest.param({"montant": "37.50"}, "M1", None, id="montant with a dot"),
        pytest.param({"montant": "37,50"}, "M1", None, id="montant with a comma"),
        pytest.param({"montant": None}, "M1", None, id="montant missing"),
        pytest.param({"montant": "99"}, "M3", None, id="montant under 1 euro"),
        pytest.param({"montant": "10000001"}, "M5", None, id="montant over 100000 euros"),
        pytest.param({"numcli": "1964"}, "T1", None, id="numcli without its leading zeros"),
        pytest.param({"numcli": "00196A"}, "T1", None, id="numcli not digits"),
        pytest.param({"numcli": "999999"}, "T2", None, id="numcli unknown"),
        pytest.param(
            {"refdet": "ABCD"}, "R3", "Le format du paramètre REFDET n'est pas conforme", id="refdet 4 chars"
        ),
        pytest.param({"refdet": "FAC-2024-01"}, "R3", None, id="refdet with dashes"),
        pytest.param({"refdet": "A" * 31}, "R3", None, id="refdet over 30 characters"),
        pytest.param({"saisie": "P"}, "S1", None, id="saisie not T X W"),
        pytest.param({"saisie": None}, "S1", None, id="saisie missing"),
        pytest.param({"urlnotif": "/payfip/notification"}, "N1", None, id="urlnotif relative"),
        pytest.param({"urlnotif": None}, "N1", None, id="urlnotif missing"),
        pytest.param({"urlredirect": "paiement/retour"}, "D1", None, id="urlredirect relative"),
        pytest.param({"urlredirect": "ftp://example.fr/retour"}, "D1", None, id="urlredirect not http"),
    ],
)
async def test_invalid_creation_is_refused_with_the_real_fault_code(
    simulator: Simulator, overrides: dict[str, str | None], code: str, libelle: str | None
) -> None:
    answer = await simulator.soap(creer_paiement(**overrides))

    assert answer.status == 500
    fault = read_fault(answer.text)
    assert fault.faultcode == "S:Server"
    assert fault.faultstring == "fr.gouv.finances.cp.tpa.webservice.exceptions.FonctionnelleErreur"
    assert fault.detail_type == "FonctionnelleErreur"
    assert fault.detail["code"] == code
    if libelle is not None:
        assert fault.detail["libelle"] == libelle
    assert (await simulator.control("GET", "/operations"))["operations"] == []


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"montant": "100"}, id="montant exactly 1 euro"),
        pytest.param({"montant": "10000000"}, id="montant exactly 100000 euros"),
        pytest.param({"refdet": "ABC123"}, id="refdet 6 characters"),
        pytest.param({"refdet": "A" * 30}, id="refdet 30 characters"),
        pytest.param({"saisie": "X"}, id="saisie activation"),
        pytest.param({"saisie": "W"}, id="saisie production"),
        pytest.param({"objet": None}, id="objet absent"),
        pytest.param({"numcli": "010203"}, id="second default client"),
        pytest.param({"urlredirect": "https://portail.example.fr/retour?facture=12"}, id="urlredirect query"),
    ],
)
async def test_valid_edge_values_are_accepted(simulator: Simulator, overrides: dict[str, str | None]) -> None:
    idop = await simulator.create_payment(**overrides)

    assert len(idop) == 36


async def test_fault_lists_code_descriptif_libelle_severite_in_order(simulator: Simulator) -> None:
    answer = await simulator.soap(creer_paiement(refdet="ABCD"))

    assert "<ns2:FonctionnelleErreur" in answer.text
    fault = read_fault(answer.text)
    assert fault.detail_order == ["code", "descriptif", "libelle", "severite"]
    assert fault.detail["descriptif"] == ""
    assert fault.detail["severite"] == "2"


async def test_namespace_qualified_fields_count_as_missing(simulator: Simulator) -> None:
    qualified_mel = creer_paiement(mel=None).replace(
        "<exer>", "<pai:mel>jeanne.martin@example.fr</pai:mel><exer>"
    )

    answer = await simulator.soap(qualified_mel)

    assert read_fault(answer.text).detail["code"] == "A1"
    [request] = (await simulator.control("GET", "/requests"))["requests"]
    assert any("mel" in element for element in request["ignored_elements"])


async def test_wrong_content_type_is_refused_with_415(simulator: Simulator) -> None:
    answer = await simulator.soap(
        creer_paiement(), headers={"Content-Type": "application/soap+xml; charset=utf-8"}
    )

    assert answer.status == 415


@pytest.mark.parametrize(
    ("body", "faultcode"),
    [
        pytest.param("<not-xml", "S:Client", id="not xml"),
        pytest.param(
            '<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>',
            "S:VersionMismatch",
            id="soap 1.2",
        ),
        pytest.param(
            f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><payer xmlns="urn:autre"/></s:Body></s:Envelope>',
            "S:Client",
            id="unknown operation",
        ),
        pytest.param(
            creer_paiement().replace(
                'xmlns:pai="http://securite', 'xmlns:pai="http://autre.example/x" xmlns:old="http://securite'
            ),
            "S:Client",
            id="operation in the wrong namespace",
        ),
        pytest.param(
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>&a;</s:Body></s:Envelope>',
            "S:Client",
            id="dtd refused",
        ),
    ],
)
async def test_undispatchable_requests_get_a_plain_soap_fault(
    simulator: Simulator, body: str, faultcode: str
) -> None:
    answer = await simulator.soap(body)

    assert answer.status == 500
    fault = read_fault(answer.text)
    assert fault.faultcode == faultcode
    assert fault.detail_type is None


async def test_unknown_extra_fields_are_noted_but_do_not_fail(simulator: Simulator) -> None:
    idop = await simulator.create_payment(canal="web")

    [request] = (await simulator.control("GET", "/requests"))["requests"]
    assert request["idop"] == idop
    assert "arg0/canal" in request["ignored_elements"]
