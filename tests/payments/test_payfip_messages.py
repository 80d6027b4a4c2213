"""Building PayFiP's SOAP requests and reading its replies: pure functions, written from the protocol page."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import pytest
from defusedxml.ElementTree import fromstring
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.payments import payfip
from services.payments.payfip import (
    InvalidPayfipField,
    PayfipError,
    PayfipMalformedReply,
    PayfipRejected,
    PayfipResultUnknown,
    PayfipTechnicalFault,
    PayfipUnavailable,
    PayfipUnknownOperation,
    PaymentRequest,
)

NS = payfip.SERVICE_NAMESPACE
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def request(**changes: object) -> PaymentRequest:
    values: dict[str, object] = {
        "exer": "2024",
        "mel": "marie.dupont@example.org",
        "montant": 3750,
        "numcli": "001964",
        "objet": "Cantine de l'école – septembre",
        "refdet": "2024000123",
        "saisie": "T",
        "urlnotif": "https://portail.example.org/payfip/notification",
        "urlredirect": "https://demo.example.org/reglement/retour",
    } | changes
    return PaymentRequest(**values)  # type: ignore[arg-type]


def reply(operation: str, fields: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP}"><S:Body>'
        f'<ns2:{operation}Response xmlns:ns2="{NS}"><return>{fields}</return></ns2:{operation}Response>'
        "</S:Body></S:Envelope>"
    ).encode()


def fault(error_type: str, code: str, libelle: str, *, message: str = "") -> bytes:
    extra = f"<message>{message}</message>" if message else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><S:Envelope xmlns:S="{SOAP}"><S:Body><S:Fault>'
        f"<faultcode>S:Server</faultcode>"
        f"<faultstring>fr.gouv.finances.cp.tpa.webservice.exceptions.{error_type}</faultstring>"
        f'<detail><ns2:{error_type} xmlns:ns2="{NS}"><code>{code}</code><descriptif/>'
        f"<libelle>{escape(libelle)}</libelle>{extra}<severite>2</severite></ns2:{error_type}></detail>"
        "</S:Fault></S:Body></S:Envelope>"
    ).encode()


PAID_FIELDS = (
    "<dattrans>02092015</dattrans><exer>2015</exer><heurtrans>1405</heurtrans>"
    "<idOp>cc0cb210-1cd4-11ea-8cca-0213ad91a103</idOp><mel>marie.dupont@example.org</mel>"
    "<montant>3750</montant><numauto>112233445566-tip</numauto><numcli>001964</numcli>"
    "<objet>Cantine</objet><refdet>2024000123</refdet><resultrans>P</resultrans><saisie>T</saisie>"
)


# --- building ---------------------------------------------------------------------------------------


def test_create_payment_envelope_has_unqualified_fields_in_xsd_order_inside_arg0() -> None:
    root = fromstring(payfip.build_create_payment(request()))
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None
    (operation,) = list(body)
    assert operation.tag == f"{{{NS}}}creerPaiementSecurise"
    (arg0,) = list(operation)
    assert arg0.tag == "arg0"
    assert [child.tag for child in arg0] == [
        "exer",
        "mel",
        "montant",
        "numcli",
        "objet",
        "refdet",
        "saisie",
        "urlnotif",
        "urlredirect",
    ]
    values = {child.tag: child.text for child in arg0}
    assert values["montant"] == "3750"
    assert values["numcli"] == "001964"
    assert values["objet"] == "Cantine de l ecole septembre"


def test_objet_is_left_out_when_nothing_remains_after_cleaning() -> None:
    root = fromstring(payfip.build_create_payment(request(objet="« — »")))
    assert root.find(".//objet") is None


def test_client_number_keeps_its_leading_zeros_and_amount_is_a_string_of_cents() -> None:
    xml = payfip.build_create_payment(request(numcli="000042", montant=100)).decode()
    assert "<numcli>000042</numcli>" in xml
    assert "<montant>100</montant>" in xml


def test_urls_and_mail_are_escaped_in_the_envelope() -> None:
    xml = payfip.build_create_payment(request(urlredirect="https://x.example.org/r?a=1&b=<2>")).decode()
    assert "a=1&amp;b=&lt;2&gt;" in xml
    root = fromstring(xml.encode())
    assert root.find(".//urlredirect").text == "https://x.example.org/r?a=1&b=<2>"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"refdet": "AB12"}, "refdet"),
        ({"refdet": "2024-000123"}, "refdet"),
        ({"refdet": "A" * 31}, "refdet"),
        ({"numcli": "1964"}, "numcli"),
        ({"numcli": "00196A"}, "numcli"),
        ({"montant": 99}, "montant"),
        ({"montant": 10_000_001}, "montant"),
        ({"mel": "a@b.c"}, "mel"),
        ({"mel": "x" * 75 + "@example.org"}, "mel"),
        ({"exer": "24"}, "exer"),
        ({"saisie": "Q"}, "saisie"),
        ({"urlnotif": "/payfip/notification"}, "urlnotif"),
    ],
)
def test_fields_payfip_would_refuse_are_never_sent(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidPayfipField) as raised:
        payfip.build_create_payment(request(**changes))
    assert raised.value.field == field


def test_detail_request_names_idop_with_a_capital_o() -> None:
    root = fromstring(payfip.build_payment_detail("cc0cb210-1cd4-11ea-8cca-0213ad91a103"))
    operation = root.find(f".//{{{NS}}}recupererDetailPaiementSecurise")
    assert operation is not None
    assert [c.tag for c in operation.find("arg0")] == ["idOp"]  # type: ignore[union-attr]


def test_client_detail_request_names_numcli_with_a_capital_c() -> None:
    root = fromstring(payfip.build_client_detail("001964"))
    assert root.find(f".//{{{NS}}}recupererDetailClient/arg0/numCli").text == "001964"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("Cantine de l'école", "Cantine de l ecole"),
        ("Eau – 2e semestre-2024", "Eau 2e semestre 2024"),
        ("Crèche   « Les Œillets »", "Creche Les OEillets"),
        ("Facture n°12/2024", "Facture n 12 2024"),
        ("  \t\nRéglement\u00a0groupé  ", "Reglement groupe"),
        ("", None),
        ("€€€", None),
    ],
)
def test_objet_is_cleaned_as_the_protocol_page_says(raw: str, cleaned: str | None) -> None:
    assert payfip.clean_objet(raw) == cleaned


def test_objet_is_cut_at_100_characters_without_a_trailing_space() -> None:
    cleaned = payfip.clean_objet("abcd " * 40)
    assert cleaned is not None
    assert len(cleaned) <= 100
    assert not cleaned.endswith(" ")


@given(st.text(max_size=300))
def test_any_label_cleans_to_what_payfip_accepts(raw: str) -> None:
    cleaned = payfip.clean_objet(raw)
    if cleaned is not None:
        assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9 ]{0,98}[A-Za-z0-9])?", cleaned)
        assert "  " not in cleaned
        assert payfip.clean_objet(cleaned) == cleaned


# --- parsing replies -------------------------------------------------------------------------------


def test_creation_reply_gives_the_idop() -> None:
    body = reply("creerPaiementSecurise", "<idOp>cc0cb210-1cd4-11ea-8cca-0213ad91a103</idOp>")
    assert payfip.parse_create_payment(200, body) == "cc0cb210-1cd4-11ea-8cca-0213ad91a103"


def test_creation_reply_without_idop_is_malformed() -> None:
    with pytest.raises(PayfipMalformedReply):
        payfip.parse_create_payment(200, reply("creerPaiementSecurise", ""))


def test_paid_detail_is_read_with_amount_in_cents_and_paris_time_in_utc() -> None:
    detail = payfip.parse_payment_detail(200, reply("recupererDetailPaiementSecurise", PAID_FIELDS))
    assert detail.resultrans == "P"
    assert detail.is_paid
    assert detail.montant == 3750
    assert detail.numcli == "001964"
    assert detail.refdet == "2024000123"
    assert detail.numauto == "112233445566-tip"
    # 02/09/2015 14:05 in Paris (summer time, UTC+2) is 12:05 UTC.
    assert detail.transaction_time == datetime(2015, 9, 2, 12, 5, tzinfo=UTC)


def test_refused_detail_has_no_authorisation_number_and_optional_objet_may_be_absent() -> None:
    fields = "<dattrans>15012024</dattrans><heurtrans>0930</heurtrans><idOp>x-1</idOp><montant>100</montant>"
    fields += "<numcli>001964</numcli><refdet>ABCDEF</refdet><resultrans>R</resultrans><saisie>T</saisie>"
    detail = payfip.parse_payment_detail(200, reply("recupererDetailPaiementSecurise", fields))
    assert detail.resultrans == "R"
    assert detail.numauto is None
    assert detail.objet is None
    assert detail.transaction_time == datetime(2024, 1, 15, 8, 30, tzinfo=UTC)  # winter: UTC+1


def test_detail_fields_are_read_whatever_their_prefix_or_order() -> None:
    fields = (
        f'<p:resultrans xmlns:p="{NS}">V</p:resultrans><montant> 2500 </montant><numcli>010203</numcli>'
        "<refdet>REF123456</refdet><idOp>i</idOp>"
    )
    detail = payfip.parse_payment_detail(200, reply("recupererDetailPaiementSecurise", fields))
    assert (detail.resultrans, detail.montant, detail.numcli) == ("V", 2500, "010203")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("P5", PayfipResultUnknown),
        ("P1", PayfipUnknownOperation),
        ("A2", PayfipRejected),
        ("R3", PayfipRejected),
    ],
)
def test_functional_faults_become_typed_exceptions(code: str, kind: type[PayfipRejected]) -> None:
    body = fault("FonctionnelleErreur", code, "Résultat de la transaction non connu.", message="détail")
    with pytest.raises(kind) as raised:
        payfip.parse_payment_detail(500, body)
    assert type(raised.value) is kind
    assert raised.value.code == code
    assert raised.value.libelle == "Résultat de la transaction non connu."
    assert raised.value.message == "détail"
    assert raised.value.severite == 2


@pytest.mark.parametrize(
    "error_type", ["TechDysfonctionnementErreur", "TechIndisponibiliteErreur", "TechProtocolaireErreur"]
)
def test_technical_faults_mean_unavailable(error_type: str) -> None:
    with pytest.raises(PayfipTechnicalFault) as raised:
        payfip.parse_payment_detail(500, fault(error_type, "T9", "Service indisponible"))
    assert isinstance(raised.value, PayfipUnavailable)
    assert raised.value.fault_type == error_type


def test_a_fault_without_detail_is_technical() -> None:
    body = (
        f'<S:Envelope xmlns:S="{SOAP}"><S:Body><S:Fault><faultcode>S:Server</faultcode>'
        "<faultstring>java.lang.NullPointerException</faultstring></S:Fault></S:Body></S:Envelope>"
    ).encode()
    with pytest.raises(PayfipTechnicalFault):
        payfip.parse_payment_detail(500, body)


@pytest.mark.parametrize("status", [502, 503, 504, 404])
def test_http_errors_without_a_soap_fault_mean_unavailable(status: int) -> None:
    with pytest.raises(PayfipUnavailable) as raised:
        payfip.parse_payment_detail(status, b"<html><body><h1>Bad Gateway</h1></body></html>")
    assert raised.value.http_status == status
    assert not isinstance(raised.value, PayfipRejected)


def test_http_500_without_a_fault_means_unavailable() -> None:
    with pytest.raises(PayfipUnavailable):
        payfip.parse_payment_detail(500, b"Internal Server Error")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<S:Envelope",
        b"not xml at all",
        f'<S:Envelope xmlns:S="{SOAP}"><S:Body></S:Body></S:Envelope>'.encode(),
        f'<S:Envelope xmlns:S="{SOAP}"></S:Envelope>'.encode(),
        b"<html><body>maintenance</body></html>",
        reply("creerPaiementSecurise", "<idOp>x</idOp>"),  # the answer to another question
        reply("recupererDetailPaiementSecurise", "<resultrans>Q</resultrans>"),
        reply("recupererDetailPaiementSecurise", "<montant>12</montant>"),
    ],
)
def test_malformed_replies_are_malformed_not_crashes(body: bytes) -> None:
    with pytest.raises(PayfipMalformedReply):
        payfip.parse_payment_detail(200, body)


def test_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
        b'<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>&lol2;</S:Body></S:Envelope>'
    )
    with pytest.raises(PayfipMalformedReply):
        payfip.parse_payment_detail(200, bomb)


def test_client_detail_reply_is_read() -> None:
    body = reply(
        "recupererDetailClient",
        "<libelleN1>MAIRIE DE DEMONSTRATION</libelleN1><libelleN2>REGIE</libelleN2><numcli>001964</numcli>",
    )
    detail = payfip.parse_client_detail(200, body)
    assert detail.numcli == "001964"
    assert detail.libelle_n1 == "MAIRIE DE DEMONSTRATION"
    assert detail.libelle_n3 is None


# --- any input: a parsed result or a clear exception, never a crash ---------------------------------

_statuses = st.sampled_from([200, 500, 502, 503, 404, 302])
_xml_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(status=_statuses, body=st.binary(max_size=2000))
def test_any_bytes_parse_or_raise_a_payfip_error(status: int, body: bytes) -> None:
    for parse in (payfip.parse_payment_detail, payfip.parse_create_payment, payfip.parse_client_detail):
        with contextlib.suppress(PayfipError):
            parse(status, body)


_field_names = st.sampled_from(
    [
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
        "code",
        "libelle",
        "detail",
        "Fault",
        "return",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=_statuses,
    fields=st.lists(st.tuples(_field_names, _xml_text), max_size=14),
    wrap_in_fault=st.booleans(),
)
def test_any_well_formed_envelope_parses_or_raises_a_payfip_error(
    status: int, fields: list[tuple[str, str]], wrap_in_fault: bool
) -> None:
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields)
    if wrap_in_fault:
        body = (
            f'<S:Envelope xmlns:S="{SOAP}"><S:Body><S:Fault><faultstring>x.FonctionnelleErreur</faultstring>'
            f'<detail><ns2:FonctionnelleErreur xmlns:ns2="{NS}">{inner}</ns2:FonctionnelleErreur></detail>'
            "</S:Fault></S:Body></S:Envelope>"
        ).encode()
    else:
        body = reply("recupererDetailPaiementSecurise", inner)
    try:
        detail = payfip.parse_payment_detail(status, body)
    except PayfipError:
        return
    assert detail.resultrans in payfip.RESULT_CODES
    assert detail.montant is None or detail.montant >= 0


@given(
    resultrans=st.sampled_from(sorted(payfip.RESULT_CODES)),
    montant=st.integers(min_value=0, max_value=10**9),
    numcli=st.from_regex(r"\A[0-9]{6}\Z"),
    refdet=st.from_regex(r"\A[A-Za-z0-9]{6,30}\Z"),
)
def test_values_in_a_reply_come_back_as_sent(resultrans: str, montant: int, numcli: str, refdet: str) -> None:
    idop = str(uuid.uuid1())
    fields = (
        f"<idOp>{idop}</idOp><montant>{montant}</montant><numcli>{numcli}</numcli>"
        f"<refdet>{refdet}</refdet><resultrans>{resultrans}</resultrans>"
    )
    detail = payfip.parse_payment_detail(200, reply("recupererDetailPaiementSecurise", fields))
    assert (detail.resultrans, detail.montant, detail.numcli, detail.refdet, detail.idop) == (
        resultrans,
        montant,
        numcli,
        refdet,
        idop,
    )


@given(dattrans=st.text(max_size=10), heurtrans=st.one_of(st.none(), st.text(max_size=6)))
def test_any_transaction_date_is_read_or_ignored(dattrans: str, heurtrans: str | None) -> None:
    moment = payfip.transaction_time(dattrans, heurtrans)
    assert moment is None or moment.tzinfo is not None


def test_a_severity_that_is_not_a_number_is_ignored() -> None:
    body = fault("FonctionnelleErreur", "A2", "Adresse mél incorrecte.").replace(
        b"<severite>2", "<severite>²".encode()
    )
    with pytest.raises(PayfipRejected) as raised:
        payfip.parse_create_payment(500, body)
    assert raised.value.severite is None
