"""Paying in headless Chromium as a resident does: the payment screen's button leads to PayFiP (the
simulator) in the same window, «Payer par carte» there brings the resident back to the portal's return
page; the selection page's totals follow the ticked boxes live. axe-core finds no violation on any portal
page at a phone's width and a desktop's, nothing scrolls sideways, and the CSP blocks nothing."""

from __future__ import annotations

import re

from playwright.async_api import Browser, ConsoleMessage, expect

from tests.browser.axe import audit
from tests.browser.conftest import screenshot_path
from tests.payment_pages.support import ONE, TWO, new_town, payer_in
from tests.support.suite import Suite

TEST = "payments"


async def test_resident_pays_on_payfip_in_the_same_window_and_selects_invoices_live(
    suite: Suite, browser: Browser
) -> None:
    town = await new_town(suite)
    marie = await payer_in(suite, town)
    await marie.close()  # the HTTP client's session is not Chromium's: log in again there
    context = await browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    blocked: list[str] = []
    failures: dict[str, str] = {}
    try:
        page = await context.new_page()

        def on_console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text or "Refused to" in message.text:
                blocked.append(message.text)

        page.on("console", on_console)
        # The payment screen asks for a login first, then comes back.
        await page.goto(f"{town.public_url}/reglement/{marie.invoices[ONE]}")
        await page.get_by_label("Mon adresse").fill(marie.email)
        await page.get_by_label("Mon mot de passe").fill(marie.resident.password)
        await page.get_by_role("button", name="Connexion").click()
        await page.wait_for_url(f"{town.public_url}/reglement/{marie.invoices[ONE]}")

        # Then PayFiP in the same window (no pop-up, no new tab).
        await expect(page.get_by_role("heading", name="Paiement en ligne", exact=True)).to_be_visible()
        await expect(page.locator("main")).to_contain_text("Identifiant collectivité : 001964")
        await expect(page.locator("main")).to_contain_text("Montant de la facture : 37,50")
        await audit(page, TEST, "01-ecran-de-paiement", failures)
        await page.get_by_role("button", name="Payer sur PayFiP").click()
        await page.wait_for_url(suite.url("payfip") + "/tpa/paiementws.web?idop=*")
        assert context.pages == [page], "PayFiP opened in the same window"
        await page.screenshot(path=screenshot_path(TEST, "02-payfip-simulateur"), full_page=True)
        await page.get_by_role("button", name="Payer par carte").click()

        await page.wait_for_url(re.compile(re.escape(town.public_url) + r"/reglement/retour\?idop="))
        await expect(page.get_by_role("heading", name="Paiement confirmé")).to_be_visible()
        await expect(page.locator("main")).to_contain_text("Un reçu vous a été envoyé par e-mail")
        await audit(page, TEST, "03-retour-paye", failures)

        await page.get_by_role("link", name="Mes règlements").first.click()
        await expect(page.get_by_role("table", name="Mes règlements")).to_contain_text("payé")
        await audit(page, TEST, "04-mes-reglements", failures)

        # The paid invoice's screen says why it cannot be paid any more.
        await page.goto(f"{town.public_url}/reglement/{marie.invoices[ONE]}")
        await expect(page.get_by_role("button", name="Payer sur PayFiP")).to_have_count(0)
        await audit(page, TEST, "05-facture-deja-reglee", failures)

        # The selection with JavaScript: ticking rows highlights them and updates the totals at once.
        await page.goto(town.public_url + "/reglement/selection")
        count = page.locator("#nombre-factures")
        total = page.locator("#montant-regle")
        await expect(count).to_have_text("0")
        await expect(page.get_by_role("button", name="Mettre à jour le total")).to_be_hidden()
        for number in TWO:
            await page.get_by_role("checkbox", name=re.compile(re.escape(number))).check()
        await expect(count).to_have_text("2")
        await expect(total).to_have_text(re.compile(r"^70,40\s€$"))
        await expect(page.locator("tr.selectionnee")).to_have_count(2)
        await expect(page.locator("#totaux")).to_have_attribute("aria-live", "polite")
        await audit(page, TEST, "06-selection", failures)
        periscolaire = page.get_by_role("checkbox", name=re.compile("2016-PER-000001"))
        await periscolaire.check()
        await expect(page.locator("#avertissement-regies")).to_be_visible()
        await expect(total).to_have_text(re.compile(r"^85,40\s€$"))
        await audit(page, TEST, "07-selection-deux-regies", failures)
        await periscolaire.uncheck()
        await expect(page.locator("#avertissement-regies")).to_be_hidden()

        # Off to PayFiP with both, back without a result: the portal checks and says so.
        await page.get_by_role("button", name="Payer les factures sélectionnées").click()
        await page.wait_for_url(suite.url("payfip") + "/tpa/paiementws.web?idop=*")
        idop = page.url.split("idop=")[1]
        await page.goto(f"{town.public_url}/reglement/retour?idop={idop}")
        await expect(page.get_by_role("heading", name="Paiement en cours de vérification")).to_be_visible()
        await audit(page, TEST, "08-retour-en-cours", failures)

        # The same invoices again, from a page opened before: refused, with why and until when.
        await page.goto(f"{town.public_url}/reglement/{marie.invoices[TWO[0]]}")
        await expect(page.locator("main")).to_contain_text("est déjà en cours")
        await audit(page, TEST, "09-facture-en-cours-de-paiement", failures)
    finally:
        await context.close()
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert not blocked, blocked
