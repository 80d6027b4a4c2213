"""Asking the invoices service what is due, at the moment of payment (amounts never come from the browser).

The contract: `POST /towns/{town_id}/accounts/{account_id}/payable` with `{"invoice_ids": [...]}` answers
the town (name, public URL) and, for each invoice, its number, amount, PayFiP reference and year, its
régie's PayFiP settings and whether it is payable now (with the reason when it is not); 404
`invoice_not_found` when an id is not one of the account's invoices.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.payments.domain import InvoiceNotFound, PayableInvoice, Regie
from shared.plumbing.http_client import ServiceClient, ServiceError, ServiceUnavailable
from shared.plumbing.logging import get_logger

log = get_logger(__name__)


class InvoicesUnavailable(Exception):
    """The invoices service could not say what is due: no payment can start."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RegieAnswer(_Lenient):
    regie_id: uuid.UUID
    code: str
    name: str
    payfip_client_number: str = Field(pattern=r"^\d{6}$")
    payfip_mode: Literal["T", "X", "W"]
    online_payment_enabled: bool
    grouped_payment_allowed: bool


class InvoiceAnswer(_Lenient):
    invoice_id: uuid.UUID
    number: str
    amount_cents: int
    state: str | None = None
    payfip_reference: str | None = None
    payfip_year: int | None = None
    object: str = ""
    regie: RegieAnswer
    payable: bool
    reason: str | None = None


class TownAnswer(_Lenient):
    town_id: uuid.UUID
    name: str
    public_url: str


class PayableAnswer(_Lenient):
    town: TownAnswer | None = None
    invoices: list[InvoiceAnswer]


@dataclass(frozen=True)
class PayableInvoices:
    town: TownAnswer | None
    invoices: list[PayableInvoice]


class InvoicesClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    async def payable(
        self, town_id: uuid.UUID, account_id: uuid.UUID, invoice_ids: Sequence[uuid.UUID]
    ) -> PayableInvoices:
        try:
            body = await self._client.post(
                f"/towns/{town_id}/accounts/{account_id}/payable",
                {"invoice_ids": [str(invoice_id) for invoice_id in invoice_ids]},
            )
        except ServiceError as error:
            if error.status == 404:
                raise InvoiceNotFound("Facture introuvable.") from None
            log.warning("invoices_payable_refused", status=error.status, code=error.code)
            raise InvoicesUnavailable(f"invoices answered {error.status} {error.code}") from None
        except ServiceUnavailable as error:
            raise InvoicesUnavailable(error.reason) from None
        try:
            answer = PayableAnswer.model_validate(body)
        except ValidationError as error:
            log.error("invoices_payable_unreadable", errors=error.error_count())
            raise InvoicesUnavailable("unreadable answer from invoices") from None
        return PayableInvoices(answer.town, [_invoice(invoice) for invoice in answer.invoices])


def _invoice(answer: InvoiceAnswer) -> PayableInvoice:
    regie = answer.regie
    return PayableInvoice(
        invoice_id=answer.invoice_id,
        number=answer.number,
        amount_cents=answer.amount_cents,
        payfip_reference=answer.payfip_reference,
        payfip_year=answer.payfip_year,
        object=answer.object,
        regie=Regie(
            regie_id=regie.regie_id,
            code=regie.code,
            name=regie.name,
            payfip_client_number=regie.payfip_client_number,
            payfip_mode=regie.payfip_mode,
            online_payment_enabled=regie.online_payment_enabled,
            grouped_payment_allowed=regie.grouped_payment_allowed,
        ),
        payable=answer.payable,
        reason=answer.reason,
    )
