"""When a service behind the gateway is down: without the payments service an invoice's page still shows
(only paying online says it cannot be checked now); without the invoices service the pages that need it
answer the French 503 page, and «Mes informations» still works without its alert section.

A second gateway process, beside the suite's, reaches the invoices and payments services through TCP
proxies that the tests cut; it shares auth with the suite's gateway, so the resident's session works on
both (cookies belong to the host name, not the port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.invoice_pages.reading import links, main_text
from tests.invoice_pages.support import logged_in_resident, publish
from tests.invoices.helpers import manual_rows, unique_email
from tests.support.resident import csrf_of
from tests.support.suite import Suite, extra_gateway
from tests.support.tcp_proxy import TcpProxy

PAYMENTS_UNKNOWN = (
    "Payer en ligne : non disponible. Le paiement en ligne ne peut pas être vérifié pour le moment : "
    "réessayez dans quelques minutes."
)


@dataclass
class CutGateway:
    port: int
    invoices: TcpProxy
    payments: TcpProxy


@pytest.fixture(scope="module")
async def cut_gateway(suite: Suite) -> AsyncIterator[CutGateway]:
    invoices = TcpProxy("127.0.0.1", suite.config.ports["invoices"])
    payments = TcpProxy("127.0.0.1", suite.config.ports["payments"])
    await invoices.start()
    await payments.start()
    env = {
        "GATEWAY_INVOICES_URL": f"http://127.0.0.1:{invoices.port}",
        "GATEWAY_PAYMENTS_URL": f"http://127.0.0.1:{payments.port}",
        "GATEWAY_SERVICE_TIMEOUT_SECONDS": "2",
    }
    try:
        # Ready as soon as it serves: its /readyz would fail the moment a proxy is cut, by design.
        async with extra_gateway(suite, "gateway-cut", env, ready_path="/healthz") as port:
            yield CutGateway(port, invoices, payments)
    finally:
        await invoices.stop()
        await payments.stop()


async def test_pages_when_payments_or_invoices_are_down(suite: Suite, cut_gateway: CutGateway) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    resident = household.resident
    base = f"http://{town.host}:{cut_gateway.port}"
    invoice_id = household.ids["2015-001-001078"]
    try:
        normal = await resident.get(f"{base}/factures/{invoice_id}")
        assert normal.status == 200
        assert f"/reglement/{invoice_id}" in links(normal.text)

        await cut_gateway.payments.cut()
        page = await resident.get(f"{base}/factures/{invoice_id}")
        assert page.status == 200, "the invoice still shows without the payments service"
        text = main_text(page.text)
        assert "Montant 25,00\u00a0€" in text
        assert PAYMENTS_UNKNOWN in text
        assert f"/reglement/{invoice_id}" not in links(page.text)
        assert f"/factures/{invoice_id}/pdf" in links(page.text)
        assert f"/factures/{invoice_id}/declarer" in links(page.text)
        cut_gateway.payments.restore()

        await cut_gateway.invoices.cut()
        for path in ("/factures", f"/factures/{invoice_id}", f"/factures/{invoice_id}/pdf"):
            down = await resident.get(base + path)
            assert down.status == 503, path
            assert "Service momentanément indisponible" in down.text, path
            assert down.headers["Retry-After"] == "30"
        form = await resident.get(f"{base}/contact")
        assert form.status == 200, "the contact form needs no service to show"
        unsent = await resident.post(
            f"{base}/contact", {"csrf_token": csrf_of(form.text), "subject": "Objet", "message": "Texte"}
        )
        assert unsent.status == 503
        assert "Votre demande n'a pas été prise en compte" in unsent.text
        information = await resident.get(f"{base}/mes-informations")
        assert information.status == 200
        assert "Le réglage des alertes est momentanément indisponible" in main_text(information.text)
        cut_gateway.invoices.restore()

        again = await resident.get(f"{base}/factures")
        assert again.status == 200
    finally:
        cut_gateway.invoices.restore()
        cut_gateway.payments.restore()
        await resident.close()
