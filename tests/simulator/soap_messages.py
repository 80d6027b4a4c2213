"""Raw SOAP 1.1 messages as a PayFiP client sends them, and readers for the simulator's replies.

The requests are written out by hand (not produced by the simulator's code) so that the tests check
the simulator against the protocol page, not against itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeElementTree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SERVICE = (
    "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
    "contrat_paiement_securise/PaiementSecuriseService"
)
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}

VALID_PAYMENT = {
    "exer": "2024",
    "mel": "jeanne.martin@example.fr",
    "montant": "3750",
    "numcli": "001964",
    "objet": "Cantine septembre 2024",
    "refdet": "FAC2024000123",
    "saisie": "T",
    "urlnotif": "http://127.0.0.1:9/payfip/notification",
    "urlredirect": "http://127.0.0.1:9/paiement/retour",
}


def envelope(operation: str, arg0_content: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:pai="{SERVICE}">\n'
        "  <soapenv:Header/>\n"
        "  <soapenv:Body>\n"
        f"    <pai:{operation}>\n"
        f"      <arg0>{arg0_content}</arg0>\n"
        f"    </pai:{operation}>\n"
        "  </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )


def creer_paiement(**overrides: str | None) -> str:
    """`creerPaiementSecurise` with VALID_PAYMENT's fields; an override of None leaves the field out."""
    fields = VALID_PAYMENT | overrides
    content = "".join(f"<{name}>{value}</{name}>" for name, value in fields.items() if value is not None)
    return envelope("creerPaiementSecurise", content)


def detail_paiement(idop: str, element: str = "idOp") -> str:
    return envelope("recupererDetailPaiementSecurise", f"<{element}>{idop}</{element}>")


def detail_client(numcli: str, element: str = "numCli") -> str:
    return envelope("recupererDetailClient", f"<{element}>{numcli}</{element}>")


def _body_child(xml: str) -> Element:
    root = SafeElementTree.fromstring(xml.encode())
    assert root.tag == f"{{{SOAP_ENV}}}Envelope"
    body = root.find(f"{{{SOAP_ENV}}}Body")
    assert body is not None
    assert len(body) == 1
    return body[0]


def reply_fields(xml: str, operation: str) -> list[tuple[str, str]]:
    """The `return` fields of `<ns2:OPERATIONResponse>`, in document order; checks they are unqualified."""
    wrapper = _body_child(xml)
    assert wrapper.tag == f"{{{SERVICE}}}{operation}Response"
    assert [child.tag for child in wrapper] == ["return"]
    fields = [(child.tag, child.text or "") for child in wrapper[0]]
    assert all(not tag.startswith("{") for tag, _ in fields), fields
    return fields


@dataclass(frozen=True)
class Fault:
    faultcode: str
    faultstring: str
    detail_type: str | None
    detail: dict[str, str]
    detail_order: list[str]


def read_fault(xml: str) -> Fault:
    fault = _body_child(xml)
    assert fault.tag == f"{{{SOAP_ENV}}}Fault"
    faultcode = fault.findtext("faultcode")
    faultstring = fault.findtext("faultstring")
    assert faultcode is not None
    assert faultstring is not None
    detail = fault.find("detail")
    if detail is None or len(detail) == 0:
        return Fault(faultcode, faultstring, None, {}, [])
    error = detail[0]
    assert error.tag.startswith(f"{{{SERVICE}}}")
    return Fault(
        faultcode=faultcode,
        faultstring=faultstring,
        detail_type=error.tag.split("}", 1)[1],
        detail={child.tag: child.text or "" for child in error},
        detail_order=[child.tag for child in error],
    )
