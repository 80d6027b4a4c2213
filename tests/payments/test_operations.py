"""What the operations team sees of payments: a client number check, metrics, the calls log."""

from __future__ import annotations

import aiohttp

from tests.payments.conftest import PaymentsWorld


async def test_a_configured_client_number_can_be_checked_with_payfip(world: PaymentsWorld) -> None:
    status, known = await world.payments("GET", "/payfip/clients/001964")
    assert status == 200, known
    assert known["numcli"] == "001964"
    assert known["libelle_n1"]
    status, unknown = await world.payments("GET", "/payfip/clients/999999")
    assert (status, unknown["error"]["code"]) == (404, "payfip_client_unknown")


async def test_payfip_calls_and_settlements_are_counted_in_the_metrics(world: PaymentsWorld) -> None:
    town = await world.town()
    account = world.account()
    payment = await world.started(town, account, [world.invoices.add_invoice(town, account)])
    await world.pay(payment["idop"], "R", notify=False)
    status, _ = await world.returned(town, account, payment["idop"])
    assert status == 200
    # Two replicas sit behind a balancer: the calls may have gone to either.
    text = ""
    async with aiohttp.ClientSession() as http:
        for name, process in world.suite.processes.processes.items():
            if name.startswith("payments"):
                async with http.get(process.spec.url + "/metrics") as response:
                    text += await response.text()
    assert 'portail_payfip_calls_total{operation="creerPaiementSecurise",outcome="ok"}' in text
    assert 'portail_payments_settled_total{state="refused",trigger="return"}' in text


async def test_the_openapi_description_lists_the_payment_routes(world: PaymentsWorld) -> None:
    status, document = await world.payments("GET", "/openapi.json")
    assert status == 200
    paths = document["paths"]
    for path in (
        "/towns/{town_id}/accounts/{account_id}/payments",
        "/towns/{town_id}/accounts/{account_id}/payments/{payment_id}",
        "/towns/{town_id}/accounts/{account_id}/payments/returned",
        "/towns/{town_id}/accounts/{account_id}/payments/preview",
        "/towns/{town_id}/accounts/{account_id}/locks",
        "/payfip/notifications",
        "/incidents",
    ):
        assert path in paths, path
