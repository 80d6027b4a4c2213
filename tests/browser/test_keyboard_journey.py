"""The journey with the keyboard alone (Tab, Shift+Tab, Enter, Space), in headless Chromium: log in with
«Se souvenir de moi», open an invoice from «Mes factures», reach «Payer sur PayFiP» and press it. On every
page the skip link is the first element Tab reaches and it moves the focus to the main content; at every
key press the focused element shows a visible focus indicator (a computed outline or box-shadow)."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import screenshot_path
from tests.payment_pages.support import ONE, imported_debtor, linked_account, new_town
from tests.support.resident import Resident, new_email
from tests.support.suite import Suite

FOLDER = "keyboard"

# What has the focus: its tag, id, accessible text (label, aria-label or text) and how it shows focus.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {tag: "body", id: "", name: "", indicator: ""};
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0
    ? `outline ${style.outlineWidth} ${style.outlineStyle} ${style.outlineColor}` : "";
  const shadow = style.boxShadow !== "none" ? `box-shadow ${style.boxShadow}` : "";
  const label = el.labels && el.labels.length ? el.labels[0].textContent : "";
  const name = (el.getAttribute("aria-label") || label || el.textContent || el.value || "").trim();
  return {tag: el.tagName.toLowerCase(), id: el.id, name: name.replace(/\\s+/g, " "),
          indicator: outline || shadow};
}"""


async def focused(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = await page.evaluate(FOCUSED)
    return found


async def press(page: Page, key: str) -> dict[str, Any]:
    """Press a key; the element that has the focus afterwards must show it."""
    await page.keyboard.press(key)
    now = await focused(page)
    assert now["tag"] != "body", f"{key} left the focus nowhere on {page.url}"
    assert now["indicator"], f"no visible focus on {now} after {key} on {page.url}"
    return now


async def tab_to(page: Page, name: str, *, limit: int = 40) -> dict[str, Any]:
    """Tab forward until the focused element's text is `name`, checking the focus indicator at every
    stop."""
    for _ in range(limit):
        now = await press(page, "Tab")
        if now["name"] == name:
            return now
    raise AssertionError(f"{limit} presses of Tab never reached {name!r} on {page.url}")


async def skip_to_content(page: Page, step: str) -> None:
    """On a freshly loaded page: the first Tab reaches «Aller au contenu», Enter moves the focus to
    <main>. The next Tab then goes to the first focusable element of the main content."""
    first = await press(page, "Tab")
    assert (first["tag"], first["name"]) == ("a", "Aller au contenu"), page.url
    await page.screenshot(path=screenshot_path(FOLDER, f"{step}-lien-d-evitement"))
    await page.keyboard.press("Enter")
    await expect(page.locator("main#contenu")).to_be_focused()


async def test_resident_logs_in_opens_an_invoice_and_reaches_payment_with_the_keyboard_only(
    suite: Suite, browser: Browser
) -> None:
    town = await new_town(suite)
    email = new_email("clavier")
    await imported_debtor(suite, town, email)
    resident = Resident(suite, town, email)
    await resident.activate()
    await resident.close()
    await linked_account(suite, town, email)

    context = await browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        # Login: the skip link lands on the form, whose first field is the next Tab stop.
        await page.goto(town.public_url + "/")
        await skip_to_content(page, "01-connexion")
        field = await press(page, "Tab")
        assert field["id"] == "email", field
        await page.keyboard.type(email)
        assert (await press(page, "Tab"))["id"] == "password"
        await page.keyboard.type(resident.password)
        assert (await press(page, "Tab"))["id"] == "souvenir"
        await page.keyboard.press("Space")
        await expect(page.get_by_label("Se souvenir de moi")).to_be_checked()
        # One Tab too far, then back with Shift+Tab: the focus returns to the box, still visible.
        assert (await press(page, "Tab"))["name"] == "Connexion"
        assert (await press(page, "Shift+Tab"))["id"] == "souvenir"
        assert (await press(page, "Tab"))["name"] == "Connexion"
        await page.screenshot(path=screenshot_path(FOLDER, "02-connexion-bouton"))
        await page.keyboard.press("Enter")
        await page.wait_for_url(town.public_url + "/factures")

        # «Mes factures»: skip the header and menu, then Tab to the invoice's number.
        await skip_to_content(page, "03-mes-factures")
        await tab_to(page, ONE)
        await page.screenshot(path=screenshot_path(FOLDER, "04-mes-factures-numero"))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name=f"Facture {ONE}")).to_be_visible()

        # The invoice: Tab to «Payer en ligne».
        await skip_to_content(page, "05-facture")
        await tab_to(page, "Payer en ligne")
        await page.screenshot(path=screenshot_path(FOLDER, "06-facture-payer"))
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name="Paiement en ligne", exact=True)).to_be_visible()

        # The payment screen: Tab to «Payer sur PayFiP», past it and back, then Enter.
        await skip_to_content(page, "07-ecran-de-paiement")
        await tab_to(page, "Payer sur PayFiP")
        after = await press(page, "Tab")
        assert after["name"] == "Retour sur la liste des factures", after
        back = await press(page, "Shift+Tab")
        assert back["name"] == "Payer sur PayFiP", back
        await page.screenshot(path=screenshot_path(FOLDER, "08-payer-sur-payfip"))
        await page.keyboard.press("Enter")
        await page.wait_for_url(suite.url("payfip") + "/tpa/paiementws.web?idop=*")
    finally:
        await context.close()
