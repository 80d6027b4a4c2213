"""`POST /tpa/services/securite`: the PayFiP SOAP service."""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from .errors import ErrorType, PayFipError, payfip_error
from .faults import FaultKind, FaultRule
from .keys import CLOCK, FAULTS, LOGGER, OPERATIONS, REQUESTS, SETTINGS
from .soap import (
    CONTENT_TYPE,
    CREER_PAIEMENT,
    DETAIL_CLIENT,
    DETAIL_PAIEMENT,
    SoapProtocolError,
    SoapRequest,
    build_malformed_response,
    build_payfip_fault,
    build_protocol_fault,
    build_response,
    parse_request,
)
from .state import ReceivedRequest
from .validation import CREATION_FIELDS, creation_warnings, validate_creation

_NUMCLI = re.compile(r"^[0-9]{6}$")

_PROXY_ERROR_PAGE = (
    "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
)


def _xml_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, headers={"Content-Type": CONTENT_TYPE})


async def handle_soap(request: web.Request) -> web.StreamResponse:
    app = request.app
    log = app[LOGGER]
    body = await request.read()
    entry = app[REQUESTS].add(
        ReceivedRequest(
            received_at=app[CLOCK].now(),
            operation=None,
            fields={},
            content_type=request.headers.get("Content-Type"),
            soap_action=request.headers.get("SOAPAction"),
        )
    )

    parsed: SoapRequest | SoapProtocolError
    try:
        parsed = parse_request(body)
    except SoapProtocolError as error:
        # Kept for later: an injected fault, or a wrong Content-Type, takes precedence.
        parsed = error
    if isinstance(parsed, SoapRequest):
        entry.operation = parsed.operation
        entry.fields = dict(parsed.fields)
        entry.ignored_elements = list(parsed.ignored_elements)

    fault = app[FAULTS].take(entry.operation)
    if fault is not None:
        entry.injected_fault = fault.kind.value
        log.info("fault_injected", operation=entry.operation, kind=fault.kind.value, code=fault.code)
        injected = await _apply_fault(request, fault, entry)
        if injected is not None:
            return injected
        # A "timeout" fault only delays: the request is then carried out as usual.

    if request.content_type != "text/xml":
        # SOAP 1.1 over HTTP is text/xml; a JAX-WS service refuses anything else this way.
        entry.answer = "http 415"
        log.warning("soap_request_refused", reason="content_type", content_type=request.content_type)
        return web.Response(
            status=415,
            text=f"Unsupported Content-Type: {request.content_type} Supported ones are: [text/xml]",
        )

    if isinstance(parsed, SoapProtocolError):
        entry.answer = f"soap fault {parsed.faultcode}"
        log.warning(
            "soap_request_refused",
            reason="protocol",
            faultcode=parsed.faultcode,
            faultstring=parsed.faultstring,
        )
        return _xml_response(build_protocol_fault(parsed), status=500)

    try:
        reply = _dispatch(app, parsed, entry)
    except PayFipError as error:
        entry.answer = f"fault {error.code}"
        log.info("soap_fault_returned", operation=parsed.operation, code=error.code)
        return _xml_response(build_payfip_fault(error), status=500)
    entry.answer = "reply"
    log.info("soap_request_answered", operation=parsed.operation, idop=entry.idop)
    return _xml_response(reply)


async def _apply_fault(
    request: web.Request, fault: FaultRule, entry: ReceivedRequest
) -> web.StreamResponse | None:
    """Answer as the fault says; None means go on with the normal answer."""
    match fault.kind:
        case FaultKind.UNAVAILABLE:
            entry.answer = "connection closed"
            return _close_without_answer(request)
        case FaultKind.HTTP_502 | FaultKind.HTTP_503:
            status, reason = (
                (502, "Bad Gateway") if fault.kind is FaultKind.HTTP_502 else (503, "Service Unavailable")
            )
            entry.answer = f"http {status}"
            return web.Response(
                status=status,
                text=_PROXY_ERROR_PAGE.format(status=status, reason=reason),
                content_type="text/html",
            )
        case FaultKind.TIMEOUT:
            delay = (
                fault.delay_seconds
                if fault.delay_seconds is not None
                else request.app[SETTINGS].fault_timeout_seconds
            )
            await asyncio.sleep(delay)
            return None
        case FaultKind.MALFORMED_XML:
            entry.answer = "malformed xml"
            return _xml_response(build_malformed_response(entry.operation or CREER_PAIEMENT))
        case FaultKind.FAULT:
            code = fault.code or "P5"
            error = payfip_error(code)
            if fault.error_type is not ErrorType.FONCTIONNELLE:
                error = PayFipError(code=code, libelle=error.libelle, error_type=fault.error_type)
            entry.answer = f"fault {code}"
            return _xml_response(build_payfip_fault(error), status=500)


def _close_without_answer(request: web.Request) -> web.StreamResponse:
    """Drop the connection so the client gets no HTTP answer at all."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing reaches the client any more; aiohttp drops this response on the closed transport.
    return web.Response(status=204)


def _dispatch(app: web.Application, parsed: SoapRequest, entry: ReceivedRequest) -> bytes:
    match parsed.operation:
        case "creerPaiementSecurise":
            return _creer_paiement(app, parsed, entry)
        case "recupererDetailPaiementSecurise":
            return _detail_paiement(app, parsed, entry)
        case _:
            return _detail_client(app, parsed, entry)


def _creer_paiement(app: web.Application, parsed: SoapRequest, entry: ReceivedRequest) -> bytes:
    fields: dict[str, str | None] = dict(parsed.fields)
    entry.warnings.extend(creation_warnings(fields))
    entry.ignored_elements.extend(f"arg0/{name}" for name in parsed.fields if name not in CREATION_FIELDS)
    request = validate_creation(fields, app[SETTINGS].clients.keys())
    operation = app[OPERATIONS].create(request)
    entry.idop = operation.idop
    app[LOGGER].info(
        "operation_created",
        idop=operation.idop,
        numcli=request.numcli,
        refdet=request.refdet,
        montant=request.montant,
        saisie=request.saisie,
        warnings=entry.warnings,
    )
    return build_response(CREER_PAIEMENT, [("idOp", operation.idop)])


def _detail_paiement(app: web.Application, parsed: SoapRequest, entry: ReceivedRequest) -> bytes:
    idop = parsed.fields.get("idOp")
    if not idop:
        if "idop" in parsed.fields:
            entry.warnings.append("lowercase <idop> element: the real service answers P1")
        raise payfip_error("P1")
    entry.idop = idop
    store = app[OPERATIONS]
    operation, result = store.detail(idop)
    request = operation.request
    exer = request.exer
    if store.quirks.echo_wrong_exer and exer is not None and exer.isascii() and exer.isdigit():
        exer = str(int(exer) - 1)
    return build_response(
        DETAIL_PAIEMENT,
        [
            ("dattrans", result.dattrans),
            ("exer", exer),
            ("heurtrans", result.heurtrans),
            ("idOp", operation.idop),
            ("mel", request.mel),
            ("montant", request.montant),
            ("numauto", result.numauto),
            ("numcli", request.numcli),
            ("objet", request.objet),
            ("refdet", request.refdet),
            ("resultrans", result.resultrans.value),
            ("saisie", request.saisie),
        ],
    )


def _detail_client(app: web.Application, parsed: SoapRequest, entry: ReceivedRequest) -> bytes:
    numcli = parsed.fields.get("numCli")
    if numcli is None and "numcli" in parsed.fields:
        entry.warnings.append("lowercase <numcli> element: the request field is numCli")
    if not numcli or not _NUMCLI.fullmatch(numcli):
        raise payfip_error("T1")
    libelles = app[SETTINGS].clients.get(numcli)
    if libelles is None:
        raise payfip_error("T2")
    lines: list[str | None] = [*libelles, None, None, None]
    return build_response(
        DETAIL_CLIENT,
        [
            ("libelleN1", lines[0]),
            ("libelleN2", lines[1]),
            ("libelleN3", lines[2]),
            ("numcli", numcli),
        ],
    )
