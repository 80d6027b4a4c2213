"""axe-core finds no violation on the account pages, at a phone's width and a desktop's."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.browser.axe import describe, violations
from tests.browser.conftest import screenshot_path
from tests.support.resident import Resident, known_debtor, link_in, new_email
from tests.support.suite import Suite

WIDTHS = (360, 1280)


@pytest.mark.parametrize("width", WIDTHS)
async def test_account_pages_have_no_axe_violation(suite: Suite, browser: Browser, width: int) -> None:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email("axe"))
    await known_debtor(suite, town, resident.email)
    await resident.request_activation()
    [mail] = await suite.wait_for_mail(resident.email, subject_contains="Activez")
    link = link_in(mail.part("plain"))
    await resident.close()

    context = await browser.new_context(locale="fr-FR", viewport={"width": width, "height": 800})
    page = await context.new_page()
    pages = {
        "connexion": "/",
        "activer": "/activer",
        "activer-envoye": "/activer/envoye",
        "mot-de-passe-oublie": "/mot-de-passe-oublie",
        "choisir-mot-de-passe": link,
        "accessibilite": "/accessibilite",
        "page-introuvable": "/nulle-part",
        "lien-invalide": town.public_url + "/compte/activation/" + "x" * 43,
    }
    failures = {}
    try:
        for name, path in pages.items():
            await page.goto(path if path.startswith("http") else town.public_url + path)
            await page.screenshot(path=screenshot_path(f"accounts-{width}", name), full_page=True)
            found = await violations(page)
            if found:
                failures[name] = describe(found)
            # Nothing may overflow a phone's width (no horizontal scrolling).
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
    finally:
        await context.close()
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())
