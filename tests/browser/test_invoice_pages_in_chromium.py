"""The invoice pages as a resident uses them, in headless Chromium at a phone's width and a desktop's:
log in, «Mes factures», an invoice, its PDF, «Marquer la facture comme réglée», «Contact», «Mes
informations»; axe-core finds no violation on any page, nothing scrolls sideways, screenshots are kept."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.axe import describe, violations
from tests.browser.conftest import screenshot_path
from tests.invoice_pages.support import activated_resident, office_action, publish
from tests.invoices.helpers import manual_rows, unique_email
from tests.support.suite import Suite

WIDTHS = (360, 1280)


@pytest.mark.parametrize("width", WIDTHS)
async def test_resident_goes_through_the_invoice_pages_in_chromium(
    suite: Suite, browser: Browser, width: int
) -> None:
    town = await suite.create_town()
    marie = unique_email("chromium")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    await office_action(suite, town, "2015-001-001205", "paid-elsewhere", {})
    resident, _ = await activated_resident(suite, town, marie)
    await resident.close()

    context = await browser.new_context(
        locale="fr-FR", viewport={"width": width, "height": 800}, accept_downloads=True
    )
    page = await context.new_page()
    failures: dict[str, str] = {}

    async def check(step: str) -> None:
        await page.screenshot(path=screenshot_path(f"invoice-pages-{width}", step), full_page=True)
        found = await violations(page)
        if found:
            failures[step] = describe(found)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{step} scrolls sideways by {overflow}px at {width}px"

    try:
        await page.goto(town.public_url + "/")
        await page.get_by_label("Mon adresse").fill(marie)
        await page.get_by_label("Mon mot de passe").fill(resident.password)
        await page.get_by_role("button", name="Connexion").click()

        # «Mes factures» is where a resident lands.
        await expect(page.get_by_role("heading", name="Mes factures", level=1)).to_be_visible()
        assert page.url == town.public_url + "/factures"
        table = page.get_by_role("table", name="Mes factures, de la plus récente à la plus ancienne")
        await expect(table.get_by_role("row")).to_have_count(5)
        paid = table.get_by_role("row").filter(has_text="2015-001-001205")
        await expect(paid).to_have_class("reglee")
        await expect(paid).to_contain_text("Réglée")
        await check("01-mes-factures")

        await page.get_by_role("link", name="2015-001-001078").click()
        await expect(page.get_by_role("heading", name="Facture 2015-001-001078")).to_be_visible()
        await expect(page.locator(".details")).to_contain_text("25,00\u00a0€")
        await check("02-facture")

        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Télécharger la facture (PDF)").click()
        download = await download_info.value
        assert download.suggested_filename == "facture-2015-001-001078.pdf"
        with open(await download.path(), "rb") as pdf:  # noqa: ASYNC230 (a small local file)
            assert pdf.read(4) == b"%PDF"

        await page.get_by_role("link", name="Marquer la facture comme réglée").click()
        await expect(page.get_by_role("group", name="Moyen de paiement")).to_be_visible()
        await check("03-declarer")
        await page.get_by_role("button", name="Marquer la facture comme réglée").click()
        await expect(page.get_by_role("alert")).to_contain_text("Le formulaire contient 2 erreurs")
        await check("04-declarer-erreurs")
        await page.get_by_role("radio", name="Chèque").check()
        await page.get_by_label("Date du règlement").fill("2015-10-20")
        await page.get_by_label("Commentaire (facultatif)").fill("Chèque n° 1234567")
        await page.get_by_role("button", name="Marquer la facture comme réglée").click()
        await expect(page.get_by_role("status")).to_contain_text("Votre déclaration est enregistrée")
        await expect(page.locator(".details")).to_contain_text("Paiement déclaré")
        await check("05-facture-declaree")

        await (
            page.get_by_role("navigation", name="Menu principal").get_by_role("link", name="Contact").click()
        )
        await page.get_by_label("Objet").fill("Facture 2016-001-000096")
        await page.get_by_label("Message").fill("Bonjour, la cantine était fermée le 3 octobre.")
        await check("06-contact")
        await page.get_by_role("button", name="Envoyer le message").click()
        await expect(page.get_by_role("status")).to_contain_text("Un accusé de réception")
        await check("07-contact-envoye")
        await suite.wait_for_mail(marie, subject_contains="est bien reçu")

        await (
            page.get_by_role("navigation", name="Menu principal")
            .get_by_role("link", name="Mes informations")
            .click()
        )
        alerts = page.get_by_label("Recevoir un e-mail quand de nouvelles factures sont publiées")
        await expect(alerts).to_be_checked()
        await alerts.uncheck()
        await page.get_by_role("button", name="Enregistrer mon choix").click()
        await expect(page.get_by_role("status")).to_contain_text("vous ne recevrez plus d'e-mail")
        await check("08-mes-informations")
    finally:
        await context.close()
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())
