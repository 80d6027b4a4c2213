"""SOAP 1.1 document/literal envelopes of the PayFiP `securite` service: reading requests, writing replies.

Replies are written as text rather than through ElementTree so that the prefixes are exactly the real
service's (`S:` for the envelope, `ns2:` for the service namespace, unqualified fields): a client that
wrongly depends on a prefix should still be caught by a test against the real shapes, not by ours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeElementTree
from defusedxml import DefusedXmlException

from .errors import ErrorType, PayFipError

SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENVELOPE_NS = "http://www.w3.org/2003/05/soap-envelope"
SERVICE_NS = (
    "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
    "contrat_paiement_securise/PaiementSecuriseService"
)
EXCEPTION_PACKAGE = "fr.gouv.finances.cp.tpa.webservice.exceptions"

CREER_PAIEMENT = "creerPaiementSecurise"
DETAIL_PAIEMENT = "recupererDetailPaiementSecurise"
DETAIL_CLIENT = "recupererDetailClient"
OPERATIONS = (CREER_PAIEMENT, DETAIL_PAIEMENT, DETAIL_CLIENT)

XML_DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>"
CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class SoapRequest:
    operation: str
    # Unqualified children of `arg0`, first occurrence of each, text as sent ("" for an empty element).
    fields: dict[str, str]
    # Elements a JAX-WS service would not bind: qualified fields, repeated fields, siblings of arg0.
    ignored_elements: list[str] = field(default_factory=list)


class SoapProtocolError(Exception):
    """A request the service cannot even dispatch; answered with a plain SOAP fault."""

    def __init__(self, faultcode: str, faultstring: str, operation: str | None = None) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.operation = operation


def _qualified(namespace: str, local_name: str) -> str:
    return f"{{{namespace}}}{local_name}"


def parse_request(body: bytes) -> SoapRequest:
    """Read one request envelope; raise `SoapProtocolError` when it cannot be dispatched."""
    try:
        # SOAP forbids DTDs; defusedxml also refuses entity expansion and external references.
        root: Element = SafeElementTree.fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as error:
        raise SoapProtocolError("S:Client", f"Couldn't parse the SOAP message: {error}") from error

    if root.tag == _qualified(SOAP12_ENVELOPE_NS, "Envelope"):
        raise SoapProtocolError("S:VersionMismatch", "SOAP 1.2 envelope received where SOAP 1.1 is expected")
    if root.tag != _qualified(SOAP_ENVELOPE_NS, "Envelope"):
        raise SoapProtocolError("S:Client", f"Not a SOAP 1.1 envelope: {root.tag}")

    soap_body = root.find(_qualified(SOAP_ENVELOPE_NS, "Body"))
    if soap_body is None or len(soap_body) == 0:
        raise SoapProtocolError("S:Client", "No SOAP Body or empty SOAP Body")

    wrapper = soap_body[0]
    known_tags = {_qualified(SERVICE_NS, name): name for name in OPERATIONS}
    operation = known_tags.get(wrapper.tag)
    if operation is None:
        raise SoapProtocolError("S:Client", f"Cannot find dispatch method for {wrapper.tag}")

    ignored = [child.tag for child in wrapper if child.tag != "arg0"]
    fields: dict[str, str] = {}
    arg0 = wrapper.find("arg0")
    if arg0 is not None:
        for child in arg0:
            # Field elements are unqualified: a qualified one would not be bound by the real
            # service, so it is as good as absent.
            if child.tag.startswith("{") or child.tag in fields:
                ignored.append(f"arg0/{child.tag}")
                continue
            fields[child.tag] = child.text or ""
    return SoapRequest(operation=operation, fields=fields, ignored_elements=ignored)


def _text_element(name: str, value: str) -> str:
    if value == "":
        return f"<{name}/>"
    return f"<{name}>{escape(value)}</{name}>"


def _envelope(body_content: str) -> bytes:
    return (
        f"{XML_DECLARATION}"
        f'<S:Envelope xmlns:S="{SOAP_ENVELOPE_NS}">'
        f"<S:Body>{body_content}</S:Body>"
        "</S:Envelope>"
    ).encode()


def build_response(operation: str, fields: Iterable[tuple[str, str | None]]) -> bytes:
    """`<ns2:OPERATIONResponse><return>fields…</return></ns2:OPERATIONResponse>`; None fields are left out."""
    content = "".join(_text_element(name, value) for name, value in fields if value is not None)
    return _envelope(
        f'<ns2:{operation}Response xmlns:ns2="{SERVICE_NS}">'
        f"<return>{content}</return>"
        f"</ns2:{operation}Response>"
    )


def build_payfip_fault(error: PayFipError) -> bytes:
    """A PayFiP error fault, to be sent with HTTP 500."""
    detail_fields = [
        _text_element("code", error.code),
        _text_element("descriptif", error.descriptif),
        _text_element("libelle", error.libelle),
    ]
    if error.message is not None:
        detail_fields.append(_text_element("message", error.message))
    detail_fields.append(_text_element("severite", str(error.severite)))
    error_type = ErrorType(error.error_type).value
    return _envelope(
        "<S:Fault>"
        "<faultcode>S:Server</faultcode>"
        f"<faultstring>{EXCEPTION_PACKAGE}.{error_type}</faultstring>"
        "<detail>"
        f'<ns2:{error_type} xmlns:ns2="{SERVICE_NS}">'
        f"{''.join(detail_fields)}"
        f"</ns2:{error_type}>"
        "</detail>"
        "</S:Fault>"
    )


def build_protocol_fault(error: SoapProtocolError) -> bytes:
    """A plain SOAP fault without detail, for requests that cannot be dispatched (HTTP 500)."""
    return _envelope(
        "<S:Fault>"
        f"<faultcode>{escape(error.faultcode)}</faultcode>"
        f"<faultstring>{escape(error.faultstring)}</faultstring>"
        "</S:Fault>"
    )


def build_malformed_response(operation: str) -> bytes:
    """The start of a reply, cut in the middle of an element: not well-formed XML."""
    return (
        f"{XML_DECLARATION}"
        f'<S:Envelope xmlns:S="{SOAP_ENVELOPE_NS}"><S:Body>'
        f'<ns2:{operation}Response xmlns:ns2="{SERVICE_NS}"><return><idOp>cc0cb210-1cd4'
    ).encode()
