"""The activation journey as a resident does it, in headless Chromium, reading the e-mail from the SMTP
server the notifier delivered to."""

from __future__ import annotations

from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import screenshot_path
from tests.support.resident import known_debtor, link_in, new_email
from tests.support.suite import Suite

TEST = "activation"


async def test_resident_activates_sets_password_and_logs_in_with_remember_me(
    suite: Suite, context: BrowserContext
) -> None:
    town = await suite.create_town()
    email = new_email("chromium")
    password = "ma phrase de passe du portail"
    await known_debtor(suite, town, email)
    page = await context.new_page()

    await page.goto(town.public_url + "/")
    await expect(page).to_have_title(f"Connexion – {town.data['name']} – Le portail des factures")
    await page.screenshot(path=screenshot_path(TEST, "01-connexion"), full_page=True)

    await page.get_by_role("link", name="Activer mon compte").click()
    await page.get_by_label("Mon adresse").fill(email)
    await page.screenshot(path=screenshot_path(TEST, "02-activer"), full_page=True)
    await page.get_by_role("button", name="Activation").click()
    await expect(page.get_by_role("heading", name="Consultez votre messagerie")).to_be_visible()

    [mail] = await suite.wait_for_mail(email, subject_contains="Activez")
    await page.goto(link_in(mail.part("plain")))
    await expect(page.get_by_label("Mon adresse")).to_have_value(email)
    await page.get_by_label("Mon mot de passe").fill(password)
    await page.screenshot(path=screenshot_path(TEST, "03-mot-de-passe"), full_page=True)
    await page.get_by_role("button", name="Enregistrer").click()
    await expect(page.get_by_role("status").or_(page.locator(".alerte--success"))).to_contain_text(
        "Votre compte est activé"
    )

    await page.get_by_label("Mon adresse").fill(email)
    await page.get_by_label("Mon mot de passe").fill(password)
    await page.get_by_label("Se souvenir de moi").check()
    await page.get_by_role("button", name="Connexion").click()
    await page.goto(town.public_url + "/mes-informations")
    await expect(page.get_by_role("heading", name="Mes informations")).to_be_visible()
    await expect(page.locator("main")).to_contain_text(email)
    await page.screenshot(path=screenshot_path(TEST, "04-mes-informations"), full_page=True)

    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["portail_souvenir"]["expires"] > 0, "the remember-me cookie outlives the browser"
    assert cookies["portail_session"]["expires"] == -1, "the session cookie ends with the browser"
    assert cookies["portail_session"]["httpOnly"]
