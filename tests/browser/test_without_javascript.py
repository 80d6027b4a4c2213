"""The resident's pages with JavaScript turned off in Chromium: log in, «Mes factures», an invoice, two
invoices chosen on the selection page (the total asked of the server) and paid together on PayFiP, «Mes règlements», «Mes informations».
JavaScript only adds the running total on the selection page; without it the server says the total on the
payment screen, and nothing else changes."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect

from tests.browser.conftest import screenshot_path
from tests.payment_pages.support import ONE, TWO, imported_debtor, linked_account, new_town
from tests.support.resident import Resident, new_email
from tests.support.suite import Suite

FOLDER = "sans-javascript"


async def test_the_journey_works_with_javascript_turned_off(suite: Suite, browser: Browser) -> None:
    town = await new_town(suite)
    email = new_email("sansjs")
    _, numbers = await imported_debtor(suite, town, email)
    resident = Resident(suite, town, email)
    await resident.activate()
    await resident.close()
    await linked_account(suite, town, email)

    context = await browser.new_context(
        locale="fr-FR", viewport={"width": 360, "height": 800}, java_script_enabled=False
    )
    page = await context.new_page()
    try:
        await page.goto(town.public_url + "/")
        assert await page.locator("noscript").count() == 0, "no page asks for JavaScript"
        await page.get_by_label("Mon adresse").fill(email)
        await page.get_by_label("Mon mot de passe").fill(resident.password)
        await page.get_by_role("button", name="Connexion").click()
        await page.wait_for_url(town.public_url + "/factures")
        await expect(page.get_by_role("heading", name="Mes factures")).to_be_visible()
        await page.screenshot(path=screenshot_path(FOLDER, "01-mes-factures"), full_page=True)

        await page.get_by_role("link", name=numbers[ONE]).click()
        await expect(page.get_by_role("heading", name=f"Facture {numbers[ONE]}")).to_be_visible()

        # The selection page: ticking boxes changes no total (that is JavaScript's, and it is off), the
        # «Mettre à jour le total» button asks the server for it, then the form is posted as it is.
        await page.goto(town.public_url + "/factures")
        await page.get_by_role("link", name="Régler plusieurs factures").click()
        for number in TWO:
            await page.get_by_role("checkbox", name=re.compile(re.escape(numbers[number]))).check()
        await expect(page.locator("#nombre-factures")).to_have_text("0")
        await page.get_by_role("button", name="Mettre à jour le total").click()
        await expect(page.locator("#nombre-factures")).to_have_text("2")
        await expect(page.locator("#montant-regle")).to_have_text(re.compile(r"^70,40\s€$"))
        for number in TWO:
            await expect(
                page.get_by_role("checkbox", name=re.compile(re.escape(numbers[number])))
            ).to_be_checked()
        await page.screenshot(path=screenshot_path(FOLDER, "02-selection"), full_page=True)
        await page.get_by_role("button", name="Payer les factures sélectionnées").click()
        await page.wait_for_url(suite.url("payfip") + "/tpa/paiementws.web?idop=*")
        await expect(page.locator("body")).to_contain_text("70,40")
        await page.get_by_role("button", name="Payer par carte").click()
        await page.wait_for_url(re.compile(re.escape(town.public_url) + r"/reglement/retour\?idop="))
        await expect(page.get_by_role("heading", name="Paiement confirmé")).to_be_visible()
        await page.screenshot(path=screenshot_path(FOLDER, "03-paiement-confirme"), full_page=True)

        await page.goto(town.public_url + "/reglements")
        payments = page.get_by_role("table", name="Mes règlements")
        await expect(payments.locator("tbody tr").filter(has_text="70,40")).to_have_count(1)

        await page.goto(town.public_url + "/mes-informations")
        await expect(page.get_by_role("heading", name="Mes informations")).to_be_visible()
        await page.screenshot(path=screenshot_path(FOLDER, "04-mes-informations"), full_page=True)
    finally:
        await context.close()
