"""PayFiP's web service (régie, web-service variant), spoken as shared/design/payfip.md describes it.

The SOAP 1.1 envelopes are built here directly (document/literal): the wrapper element in the service's
namespace, its single `arg0` holding unqualified fields in XSD order. Replies are read with defusedxml, by
local names, so that a prefix or a namespace that differs from one PayFiP release to another does not
matter. Everything that can go wrong ends as one of a few exceptions the handlers understand:

- `PayfipResultUnknown` (fault P5): no result yet, ask again later;
- `PayfipUnknownOperation` (fault P1): unknown or purged idOp;
- `PayfipRejected(code, libelle)`: any other functional fault (A2 bad e-mail, R3 bad reference…);
- `PayfipUnavailable`: the service could not be asked (connection refused, timeout, HTTP error without a
  SOAP fault, malformed XML, technical faults): nothing is known, try again later.

Building and parsing are pure functions (unit- and property-tested); `PayfipClient` only moves bytes.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import aiohttp
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from shared.contracts.values import PARIS

SERVICE_NAMESPACE = (
    "http://securite.service.tpa.cp.finances.gouv.fr/services/mas_securite/"
    "contrat_paiement_securise/PaiementSecuriseService"
)
SOAP_ENVELOPE_NAMESPACE = "http://schemas.xmlsoap.org/soap/envelope/"
SERVICE_PATH = "/tpa/services/securite"
PAYMENT_PAGE_PATH = "/tpa/paiementws.web"
PRODUCTION_URL = "https://www.payfip.gouv.fr"

Operation = Literal["creerPaiementSecurise", "recupererDetailPaiementSecurise", "recupererDetailClient"]
CREATE_PAYMENT: Operation = "creerPaiementSecurise"
PAYMENT_DETAIL: Operation = "recupererDetailPaiementSecurise"
CLIENT_DETAIL: Operation = "recupererDetailClient"

MIN_AMOUNT_CENTS = 100  # 1 €
MAX_AMOUNT_CENTS = 10_000_000  # 100 000 €
OBJET_MAX_LENGTH = 100
MAX_REPLY_BYTES = 1024 * 1024

ResultCode = Literal["P", "V", "R", "Z", "A"]
RESULT_CODES: frozenset[str] = frozenset({"P", "V", "R", "Z", "A"})
Saisie = Literal["T", "X", "W"]

_NUMCLI = re.compile(r"^[0-9]{6}$")
_REFDET = re.compile(r"^[A-Za-z0-9]{6,30}$")
_EXER = re.compile(r"^[0-9]{4}$")
_IDOP = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_AMOUNT = re.compile(r"^[0-9]{1,12}$")
_OBJET_FORBIDDEN = re.compile(r"[^A-Za-z0-9 ]")
_SPACES = re.compile(r" {2,}")
# Letters NFKD does not split into a base letter and an accent.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O"})
# Word separators the protocol page turns into spaces. Any other character outside [A-Za-z0-9 ] becomes a
# space too (not dropped): «n°12/2024» reads «n 12 2024», not «n122024».
_SEPARATORS = str.maketrans({"'": " ", "’": " ", "‘": " ", "-": " ", "‐": " ", "–": " ", "—": " "})


# --- errors ----------------------------------------------------------------------------------------


class PayfipError(Exception):
    """Anything that went wrong while asking PayFiP."""

    http_status: int | None = None


class InvalidPayfipField(PayfipError, ValueError):
    """A field we were about to send breaks PayFiP's rules: nothing was sent."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PayfipRejected(PayfipError):
    """PayFiP answered with a FonctionnelleErreur: it understood the question and said no."""

    def __init__(
        self,
        code: str,
        libelle: str,
        *,
        descriptif: str = "",
        message: str = "",
        severite: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"PayFiP fault {code}: {libelle}")
        self.code = code
        self.libelle = libelle
        self.descriptif = descriptif
        self.message = message
        self.severite = severite
        self.http_status = http_status


class PayfipResultUnknown(PayfipRejected):
    """Fault P5 «Résultat de la transaction non connu.»: no result yet; the payment may still happen."""


class PayfipUnknownOperation(PayfipRejected):
    """Fault P1 «IdOp incorrect.»: the idOp is unknown, or was purged because it never reached payment."""


class PayfipUnavailable(PayfipError):
    """PayFiP could not be asked or its answer could not be read: nothing is known; try again later."""

    def __init__(self, reason: str, *, http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


class PayfipTimeout(PayfipUnavailable):
    pass


class PayfipMalformedReply(PayfipUnavailable):
    pass


class PayfipTechnicalFault(PayfipUnavailable):
    """A SOAP fault other than FonctionnelleErreur (TechDysfonctionnementErreur, TechIndisponibiliteErreur,
    TechProtocolaireErreur, or a bare fault): the service is in trouble, not our question."""

    def __init__(self, fault_type: str, code: str, libelle: str, *, http_status: int | None = None) -> None:
        super().__init__(f"PayFiP technical fault {fault_type} {code}: {libelle}", http_status=http_status)
        self.fault_type = fault_type
        self.code = code
        self.libelle = libelle


_SPECIFIC_FAULTS: dict[str, type[PayfipRejected]] = {
    "P5": PayfipResultUnknown,
    "P1": PayfipUnknownOperation,
}


# --- values ----------------------------------------------------------------------------------------


def clean_objet(text: str | None) -> str | None:
    """A label PayFiP accepts: accents stripped, `'` and `-` (and any other character outside
    `[A-Za-z0-9 ]`) turned into spaces, runs of spaces folded, at most 100 characters. None when nothing is
    left."""
    if text is None:
        return None
    flat = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    flat = "".join(c for c in flat if not unicodedata.combining(c))
    flat = flat.translate(_SEPARATORS)
    flat = "".join(" " if c.isspace() else c for c in flat)
    flat = _OBJET_FORBIDDEN.sub(" ", flat)
    flat = _SPACES.sub(" ", flat).strip()
    flat = flat[:OBJET_MAX_LENGTH].rstrip()
    return flat or None


def is_valid_refdet(refdet: str) -> bool:
    return bool(_REFDET.match(refdet))


def is_valid_numcli(numcli: str) -> bool:
    return bool(_NUMCLI.match(numcli))


def is_valid_idop(idop: str) -> bool:
    return bool(_IDOP.match(idop))


def check_mel(mel: str) -> str:
    mel = mel.strip()
    if not 6 <= len(mel) <= 80 or "@" not in mel:
        raise InvalidPayfipField("mel", "6 à 80 caractères, avec un @")
    return mel


@dataclass(frozen=True)
class PaymentRequest:
    """The fields of creerPaiementSecurise, as this portal fills them."""

    exer: str
    mel: str
    montant: int
    numcli: str
    objet: str | None
    refdet: str
    saisie: Saisie
    urlnotif: str
    urlredirect: str

    def checked(self) -> PaymentRequest:
        """The same request with `objet` cleaned; raises InvalidPayfipField on a field PayFiP would refuse."""
        if not _EXER.match(self.exer):
            raise InvalidPayfipField("exer", "année sur 4 chiffres")
        if not MIN_AMOUNT_CENTS <= self.montant <= MAX_AMOUNT_CENTS:
            raise InvalidPayfipField("montant", "entre 100 et 10000000 centimes")
        if not is_valid_numcli(self.numcli):
            raise InvalidPayfipField("numcli", "6 chiffres")
        if not is_valid_refdet(self.refdet):
            raise InvalidPayfipField("refdet", "6 à 30 lettres ou chiffres")
        if self.saisie not in ("T", "X", "W"):
            raise InvalidPayfipField("saisie", "T, X ou W")
        for name, url in (("urlnotif", self.urlnotif), ("urlredirect", self.urlredirect)):
            if not url.startswith(("http://", "https://")):
                raise InvalidPayfipField(name, "URL absolue")
        return PaymentRequest(
            exer=self.exer,
            mel=check_mel(self.mel),
            montant=self.montant,
            numcli=self.numcli,
            objet=clean_objet(self.objet),
            refdet=self.refdet,
            saisie=self.saisie,
            urlnotif=self.urlnotif,
            urlredirect=self.urlredirect,
        )


@dataclass(frozen=True)
class PaymentDetail:
    """The reply of recupererDetailPaiementSecurise, fields as PayFiP sent them (strings), `montant` in
    cents when it is a number."""

    resultrans: ResultCode
    idop: str | None
    numcli: str | None
    refdet: str | None
    montant: int | None
    numauto: str | None
    dattrans: str | None
    heurtrans: str | None
    exer: str | None
    mel: str | None
    objet: str | None
    saisie: str | None

    @property
    def is_paid(self) -> bool:
        return self.resultrans in ("P", "V")

    @property
    def transaction_time(self) -> datetime | None:
        """dattrans (DDMMYYYY) and heurtrans (HHMM) are Paris local time; None when absent or unreadable."""
        return transaction_time(self.dattrans, self.heurtrans)


@dataclass(frozen=True)
class ClientDetail:
    numcli: str | None
    libelle_n1: str | None
    libelle_n2: str | None
    libelle_n3: str | None


def transaction_time(dattrans: str | None, heurtrans: str | None) -> datetime | None:
    if not dattrans or not re.fullmatch(r"[0-9]{8}", dattrans):
        return None
    hours = heurtrans if heurtrans and re.fullmatch(r"[0-9]{4}", heurtrans) else "0000"
    try:
        local = datetime.strptime(dattrans + hours, "%d%m%Y%H%M").replace(tzinfo=PARIS)
    except ValueError:
        return None
    return local.astimezone(UTC)


# --- building --------------------------------------------------------------------------------------


def _envelope(operation: Operation, fields: list[tuple[str, str | None]]) -> bytes:
    """`<ns:operation><arg0>…</arg0></ns:operation>` in a SOAP 1.1 body; None fields are left out."""
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields if value is not None)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE_NAMESPACE}" xmlns:pai="{SERVICE_NAMESPACE}">'
        "<soapenv:Header/>"
        "<soapenv:Body>"
        f"<pai:{operation}><arg0>{inner}</arg0></pai:{operation}>"
        "</soapenv:Body>"
        "</soapenv:Envelope>"
    ).encode()


def build_create_payment(request: PaymentRequest) -> bytes:
    """creerPaiementSecurise, fields in XSD order; `montant` as a string of cents, `numcli` as text."""
    checked = request.checked()
    return _envelope(
        CREATE_PAYMENT,
        [
            ("exer", checked.exer),
            ("mel", checked.mel),
            ("montant", str(checked.montant)),
            ("numcli", checked.numcli),
            ("objet", checked.objet),
            ("refdet", checked.refdet),
            ("saisie", checked.saisie),
            ("urlnotif", checked.urlnotif),
            ("urlredirect", checked.urlredirect),
        ],
    )


def build_payment_detail(idop: str) -> bytes:
    """recupererDetailPaiementSecurise: `idOp` with a capital O (a lowercase element is refused with P1)."""
    if not is_valid_idop(idop):
        raise InvalidPayfipField("idOp", "identifiant d'opération invalide")
    return _envelope(PAYMENT_DETAIL, [("idOp", idop)])


def build_client_detail(numcli: str) -> bytes:
    """recupererDetailClient: `numCli` with a capital C."""
    if not is_valid_numcli(numcli):
        raise InvalidPayfipField("numCli", "6 chiffres")
    return _envelope(CLIENT_DETAIL, [("numCli", numcli)])


# --- parsing ---------------------------------------------------------------------------------------


def _local(tag: object) -> str:
    if not isinstance(tag, str):  # comments and processing instructions have function tags
        return ""
    return tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    value = "".join(element.itertext()).strip()
    return value or None


def _parse_document(body: bytes, http_status: int) -> Element:
    if len(body) > MAX_REPLY_BYTES:
        raise PayfipMalformedReply("reply too large", http_status=http_status)
    try:
        root = fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeDecodeError, LookupError) as error:
        raise PayfipMalformedReply(f"unreadable XML: {error}", http_status=http_status) from None
    if not isinstance(root, Element) or _local(root.tag) != "Envelope":
        raise PayfipMalformedReply("not a SOAP envelope", http_status=http_status)
    return root


def _body(root: Element, http_status: int) -> Element:
    body = _child(root, "Body")
    if body is None:
        raise PayfipMalformedReply("SOAP envelope without a Body", http_status=http_status)
    return body


def _raise_fault(fault: Element, http_status: int) -> None:
    faultstring = _text(_child(fault, "faultstring")) or _text(_child(fault, "Reason")) or ""
    faultcode = _text(_child(fault, "faultcode")) or _text(_child(fault, "Code")) or ""
    detail = _child(fault, "detail")
    if detail is None:
        detail = _child(fault, "Detail")  # SOAP 1.2 spelling
    error_element = None
    if detail is not None:
        error_element = next((c for c in detail if _local(c.tag)), None)
    fault_type = _local(error_element.tag) if error_element is not None else faultstring.rsplit(".", 1)[-1]
    code = (_text(_child(error_element, "code")) if error_element is not None else None) or ""
    libelle = (_text(_child(error_element, "libelle")) if error_element is not None else None) or ""
    if fault_type == "FonctionnelleErreur" and code:
        severite_text = _text(_child(error_element, "severite")) if error_element is not None else None
        severite = (
            int(severite_text) if severite_text and re.fullmatch(r"[0-9]{1,6}", severite_text) else None
        )
        kind = _SPECIFIC_FAULTS.get(code, PayfipRejected)
        raise kind(
            code,
            libelle,
            descriptif=(_text(_child(error_element, "descriptif")) if error_element is not None else None)
            or "",
            message=(_text(_child(error_element, "message")) if error_element is not None else None) or "",
            severite=severite,
            http_status=http_status,
        )
    raise PayfipTechnicalFault(
        fault_type or faultcode or "Fault", code, libelle or faultstring, http_status=http_status
    )


def parse_reply(operation: Operation, http_status: int, body: bytes) -> dict[str, str | None]:
    """The fields of `return` in an `<operation>Response`, or the fault it carries as an exception.

    A SOAP fault is read whatever the status (PayFiP sends them with HTTP 500); any other non-200 answer
    is "unavailable"; a 200 that is not the expected response is a malformed reply.
    """
    if http_status != 200 and http_status != 500:
        # A proxy's error page, a 502 from a load balancer…: try the fault first, then give up.
        try:
            root = _parse_document(body, http_status)
        except PayfipMalformedReply:
            raise PayfipUnavailable(f"HTTP {http_status}", http_status=http_status) from None
        fault = _child(_body(root, http_status), "Fault")
        if fault is None:
            raise PayfipUnavailable(f"HTTP {http_status}", http_status=http_status)
        _raise_fault(fault, http_status)
    try:
        root = _parse_document(body, http_status)
    except PayfipMalformedReply:
        if http_status == 500:
            raise PayfipUnavailable("HTTP 500 without a SOAP fault", http_status=http_status) from None
        raise
    soap_body = _body(root, http_status)
    fault = _child(soap_body, "Fault")
    if fault is not None:
        _raise_fault(fault, http_status)
    if http_status != 200:
        raise PayfipUnavailable(f"HTTP {http_status} without a SOAP fault", http_status=http_status)
    response = _child(soap_body, operation + "Response")
    if response is None:
        raise PayfipMalformedReply(f"no {operation}Response in the reply", http_status=http_status)
    returned = _child(response, "return")
    if returned is None:
        raise PayfipMalformedReply(f"{operation}Response without return", http_status=http_status)
    fields: dict[str, str | None] = {}
    for element in returned:
        name = _local(element.tag)
        if name and name not in fields:
            fields[name] = _text(element)
    return fields


def parse_create_payment(http_status: int, body: bytes) -> str:
    """The idOp PayFiP created."""
    fields = parse_reply(CREATE_PAYMENT, http_status, body)
    idop = fields.get("idOp")
    if not idop or not is_valid_idop(idop):
        raise PayfipMalformedReply("creerPaiementSecurise answered without a usable idOp", http_status=200)
    return idop


def parse_payment_detail(http_status: int, body: bytes) -> PaymentDetail:
    fields = parse_reply(PAYMENT_DETAIL, http_status, body)
    resultrans = (fields.get("resultrans") or "").strip()
    if resultrans not in RESULT_CODES:
        raise PayfipMalformedReply(f"unknown resultrans {resultrans[:10]!r}", http_status=200)
    montant_text = fields.get("montant")
    montant = int(montant_text) if montant_text and _AMOUNT.match(montant_text) else None
    return PaymentDetail(
        resultrans=resultrans,  # type: ignore[arg-type]  # checked against RESULT_CODES above
        idop=fields.get("idOp"),
        numcli=fields.get("numcli"),
        refdet=fields.get("refdet"),
        montant=montant,
        numauto=fields.get("numauto"),
        dattrans=fields.get("dattrans"),
        heurtrans=fields.get("heurtrans"),
        exer=fields.get("exer"),
        mel=fields.get("mel"),
        objet=fields.get("objet"),
        saisie=fields.get("saisie"),
    )


def parse_client_detail(http_status: int, body: bytes) -> ClientDetail:
    fields = parse_reply(CLIENT_DETAIL, http_status, body)
    return ClientDetail(
        numcli=fields.get("numcli"),
        libelle_n1=fields.get("libelleN1"),
        libelle_n2=fields.get("libelleN2"),
        libelle_n3=fields.get("libelleN3"),
    )


# --- transport -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRecord:
    """One exchange with PayFiP, for the calls log."""

    operation: Operation
    outcome: Literal["ok", "fault", "unavailable"]
    code: str | None
    http_status: int | None
    started_at: datetime
    duration_ms: int
    error: str | None


CallRecorder = Callable[[CallRecord], Awaitable[None]]
T = TypeVar("T")


class PayfipClient:
    """Speaks to PayFiP (or the simulator) at `base_url`; one instance per process, on a shared session.

    Each method takes an optional `record` coroutine called with what happened (the calls log), whatever
    the outcome, before the result is returned or the error raised.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        timeout_seconds: float = 15.0,
        page_url: str | None = None,
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        # The browser may reach PayFiP (in development: the simulator) under another name than this service.
        self.page_base_url = (page_url or base_url).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)

    def payment_page_url(self, idop: str) -> str:
        """Where the resident's browser goes, in the same window."""
        return f"{self.page_base_url}{PAYMENT_PAGE_PATH}?idop={idop}"

    async def create_payment(self, request: PaymentRequest, *, record: CallRecorder | None = None) -> str:
        envelope = build_create_payment(request)
        return await self._exchange(CREATE_PAYMENT, envelope, parse_create_payment, record)

    async def payment_detail(self, idop: str, *, record: CallRecorder | None = None) -> PaymentDetail:
        envelope = build_payment_detail(idop)
        return await self._exchange(PAYMENT_DETAIL, envelope, parse_payment_detail, record)

    async def client_detail(self, numcli: str, *, record: CallRecorder | None = None) -> ClientDetail:
        envelope = build_client_detail(numcli)
        return await self._exchange(CLIENT_DETAIL, envelope, parse_client_detail, record)

    async def _exchange(
        self,
        operation: Operation,
        envelope: bytes,
        parse: Callable[[int, bytes], T],
        record: CallRecorder | None,
    ) -> T:
        started = time.perf_counter()
        started_at = datetime.now(UTC)
        status: int | None = None

        async def remember(
            outcome: Literal["ok", "fault", "unavailable"], code: str | None, error: str | None
        ) -> None:
            if record is not None:
                elapsed = round((time.perf_counter() - started) * 1000)
                await record(CallRecord(operation, outcome, code, status, started_at, elapsed, error))

        try:
            status, body = await self._post(envelope)
            result = parse(status, body)
        except PayfipRejected as error:
            await remember("fault", error.code, error.libelle)
            raise
        except PayfipUnavailable as error:
            await remember(
                "unavailable", error.code if isinstance(error, PayfipTechnicalFault) else None, error.reason
            )
            raise
        await remember("ok", None, None)
        return result

    async def _post(self, envelope: bytes) -> tuple[int, bytes]:
        try:
            async with self._session.post(
                self.base_url + SERVICE_PATH,
                data=envelope,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                timeout=self._timeout,
            ) as response:
                body = await response.content.read(MAX_REPLY_BYTES + 1)
                return response.status, body
        except TimeoutError:
            raise PayfipTimeout("no answer within the timeout") from None
        except aiohttp.ClientError as error:
            raise PayfipUnavailable(f"connection failed: {type(error).__name__}") from None
