"""Every error a resident can meet is a French page with a way back, and never a stack trace: an unknown
page, an invoice that is not theirs, an unknown town (404), a link that expired or was already used (410),
a service answering garbage (500) and a service that does not answer (503).

The 500 and the 503 come from a second gateway process beside the suite's whose payments service is a
stand-in this test runs: first it answers garbage (a 200 that is not JSON), then it is stopped (nothing
listens any more). The resident's session works on both gateways (cookies belong to the host name)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from tests.invoice_pages.reading import links, main_text
from tests.payment_pages.support import payer
from tests.support.http import browser_session
from tests.support.resident import Page, Resident, known_debtor, link_in, new_email
from tests.support.suite import Suite, extra_gateway
from tools.processes import free_port

EXPIRED = "Lien expiré ou déjà utilisé"
# What must never reach a browser: Python's traces and exception names.
TRACE = re.compile(r"Traceback|File \"|\b[A-Z][A-Za-z]+(Error|Exception)\b|aiohttp|asyncpg|\.py\b")


def assert_french_error(
    page: Page, status: int, heading: str, way_back: str, *, title: str | None = None
) -> None:
    """The page's status, language, heading, title (by default the heading), a link `way_back`, and no
    trace of the code behind it."""
    assert page.status == status, (page.status, main_text(page.text)[:300])
    assert '<html lang="fr">' in page.text
    h1 = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
    assert h1, main_text(page.text)[:300]
    assert html.unescape(h1.group(1)) == heading
    shown_title = re.search(r"<title>(.*?)</title>", page.text, re.S)
    assert shown_title, "the page has a title"
    assert html.unescape(shown_title.group(1)).startswith(f"{title or heading} – "), shown_title.group(1)
    assert way_back in links(page.text), f"no link to {way_back} in {links(page.text)}"
    assert not TRACE.search(page.text), TRACE.search(page.text)
    assert page.headers["Content-Security-Policy"], "error pages have the security headers too"


async def test_unknown_page_foreign_invoice_and_unknown_town_are_french_404s(suite: Suite) -> None:
    async with payer(suite) as marie:
        assert_french_error(await marie.get("/nulle-part"), 404, "Page introuvable", "/")
        assert_french_error(await marie.get(f"/factures/{uuid.uuid4()}"), 404, "Page introuvable", "/")
        assert_french_error(await marie.get("/factures/pas-une-facture"), 404, "Page introuvable", "/")
        # Logged out, the same pages are the same 404 (nothing tells what exists).
        stranger = Resident(suite, marie.town, new_email("inconnu"))
        try:
            assert_french_error(await stranger.get("/nulle-part"), 404, "Page introuvable", "/")
        finally:
            await stranger.close()
    async with browser_session() as http:
        url = f"http://inconnue-{uuid.uuid4().hex[:6]}.localhost:{suite.config.ports['gateway']}/factures"
        async with http.get(url, allow_redirects=False) as response:
            page = Page(response.status, await response.text(), response.headers, str(response.url))
    assert_french_error(
        page, 404, "Aucun portail des factures à cette adresse", "https://lannuaire.service-public.fr/"
    )


async def test_used_and_expired_links_say_so_and_offer_a_new_one(suite: Suite) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email("lien"))
    try:
        await known_debtor(suite, town, resident.email)
        await resident.activate()
        [mail] = suite.mail.to(resident.email)
        used = await resident.get(link_in(mail.part("plain")))
        assert_french_error(used, 410, "Ce lien n'est plus valable", "/activer", title=EXPIRED)
        assert "/" in links(used.text)
        assert used.headers["Referrer-Policy"] == "no-referrer"

        # A reset link whose 30 minutes are over.
        await resident.submit("/mot-de-passe-oublie", {"email": resident.email})
        [reset] = await suite.wait_for_mail(resident.email, subject_contains="nouveau mot de passe")
        auth = await suite.db("auth")
        try:
            await auth.execute(
                "UPDATE link_tokens SET expires_at = now() - interval '1 second'"
                " WHERE town_id = $1 AND email = $2 AND purpose = 'reset'",
                town.town_id,
                resident.email,
            )
        finally:
            await auth.close()
        expired = await resident.get(link_in(reset.part("plain")))
        assert_french_error(expired, 410, "Ce lien n'est plus valable", "/mot-de-passe-oublie", title=EXPIRED)
        assert "a expiré ou a déjà servi" in main_text(expired.text)
    finally:
        await resident.close()


@dataclass
class BrokenPayments:
    """The stand-in for the payments service, and the gateway that calls it."""

    gateway_port: int
    runner: web.AppRunner


@pytest.fixture(scope="module")
async def broken_payments(suite: Suite) -> AsyncIterator[BrokenPayments]:
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(text="<html>not what the gateway expects</html>", content_type="text/html")

    stand_in = web.Application()
    stand_in.router.add_route("*", "/{tail:.*}", garbage)
    runner = web.AppRunner(stand_in)
    await runner.setup()
    payments_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", payments_port).start()
    env = {
        "GATEWAY_PAYMENTS_URL": f"http://127.0.0.1:{payments_port}",
        "GATEWAY_SERVICE_TIMEOUT_SECONDS": "2",
    }
    try:
        # Ready as soon as it serves: its /readyz fails once the stand-in stops, by design.
        async with extra_gateway(suite, "gateway-broken-payments", env, ready_path="/healthz") as port:
            yield BrokenPayments(port, runner)
    finally:
        await runner.cleanup()


async def test_a_service_answering_garbage_then_not_at_all_gives_french_500_then_503(
    suite: Suite, broken_payments: BrokenPayments
) -> None:
    async with payer(suite) as marie:
        base = f"http://{marie.town.host}:{broken_payments.gateway_port}"
        failed = await marie.get(base + "/reglements")
        assert_french_error(failed, 500, "Une erreur est survenue", "/")
        assert "not what the gateway expects" not in failed.text
        assert re.search(r"en citant la référence <strong>[A-Za-z0-9-]{8,}</strong>", failed.text), (
            "the page gives a reference to quote"
        )

        await broken_payments.runner.cleanup()  # nothing answers at that address any more
        down = await marie.get(base + "/reglements")
        assert_french_error(down, 503, "Service momentanément indisponible", "/")
        assert down.headers["Retry-After"] == "30"
        assert "rien n'a été enregistré ni débité" in main_text(down.text)
