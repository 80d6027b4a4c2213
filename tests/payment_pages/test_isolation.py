"""A resident reaches only their own invoices and payments: another resident's invoice id or PayFiP
operation id answers the same French 404 as an unknown one, for reading and for paying. And PayFiP's
servers reach the notification page on a host that is no town's, as production routes it."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import aiohttp

from tests.payment_pages.support import ONE, idop_of, new_town, payer, payer_in, text_of
from tests.support.http import browser_session
from tests.support.suite import Suite
from tests.support.waiting import eventually


async def test_another_residents_invoice_and_payfip_operation_are_not_found(suite: Suite) -> None:
    town = await new_town(suite)
    marie = await payer_in(suite, town)
    jean = await payer_in(suite, town, tag="voisin")
    try:
        jeans_invoice = jean.invoices[ONE]
        jeans_idop = idop_of(await jean.leave_for_payfip(ONE))
        for path in (f"/reglement/{jeans_invoice}", f"/reglement/{uuid.uuid4()}"):
            page = await marie.get(path)
            assert page.status == 404, path
            assert "Page introuvable" in text_of(page.text)
            posted = await marie.post_form("/reglements", path, {})
            assert posted.status == 404, path
        chosen = [("facture", str(jeans_invoice)), ("action", "payer")]
        assert (await marie.post_form("/reglements", "/reglement/selection", chosen)).status == 404
        for idop in (jeans_idop, "inconnu-123", "<script>"):
            back = await marie.get(f"/reglement/retour?idop={idop}")
            assert back.status == 404, idop
            assert "Page introuvable" in text_of(back.text)
        assert str(jeans_invoice) not in (await marie.get("/reglement/selection")).text
        # Nothing Marie did touched Jean's payment in progress.
        [jeans] = await jean.payments()
        assert jeans["state"] == "pending"
        assert await marie.payments() == []
    finally:
        await marie.close()
        await jean.close()


async def test_payment_pages_ask_for_a_login_first(suite: Suite) -> None:
    town = await suite.create_town()
    async with browser_session() as anonymous:
        for path in (
            f"/reglement/{uuid.uuid4()}",
            "/reglement/selection",
            "/reglement/retour?idop=x",
            "/reglements",
        ):
            async with anonymous.get(town.public_url + path, allow_redirects=False) as page:
                assert page.status == 303, path
                location = unquote(page.headers["Location"])
                assert location == f"/?suite={path}", "back to the page once logged in"


async def test_payfip_notifies_through_the_gateway_on_a_host_that_is_no_towns(suite: Suite) -> None:
    async with payer(suite) as marie:
        idop = idop_of(await marie.leave_for_payfip(ONE))
        # The payer pays, but PayFiP's notification and the browser's return both get lost...
        await marie.control("POST", f"/operations/{idop}/result", {"resultrans": "P", "notify": False})
        # ...then PayFiP's servers call the shared notification host, as production routes it.
        shared_host = {"Host": "paiements.portail-des-factures.example"}
        async with aiohttp.ClientSession() as payfip:
            async with payfip.get(suite.url("gateway") + "/", headers=shared_host) as town_page:
                assert town_page.status == 404, "the host serves no town"
            async with payfip.post(
                suite.url("gateway") + "/payfip/notification", data={"idop": idop}, headers=shared_host
            ) as answer:
                assert answer.status == 200
                assert await answer.read() == b""
        await marie.wait_paid(ONE)

        async def settled() -> bool:
            return bool([p for p in await marie.payments() if p["state"] == "paid"])

        await eventually(settled, what="the payment settled by the notification alone")
