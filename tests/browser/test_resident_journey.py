"""The residents' manuals done end to end in headless Chromium, as one resident, against the real
processes: the billing office's import makes the debtor known; the resident activates the account
(the e-mail read from the SMTP server the notifier delivered to), chooses a password, logs in with «Se
souvenir de moi», reads «Mes factures» and an invoice, downloads its PDF, pays one invoice on PayFiP (the
simulator, in the same window), pays two together from the selection, reads «Mes règlements», declares a
payment, changes e-mail (confirmed through the e-mailed link) and password, writes to the billing office,
logs out, and logs in again with the new address and password.

Every step is kept as a screenshot at 360 and 1280 px (test-artifacts/screenshots/journey/); on every
portal page axe-core runs at both widths and nothing may scroll sideways; the console may show no CSP
violation and the browser may ask nothing of any origin but the portal's and PayFiP's. Every problem is
collected, and the test fails with the whole list."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from playwright.async_api import Browser, ConsoleMessage, Page, Request, expect

from tests.browser.axe import audit
from tests.payment_pages.support import ONE, TWO, imported_debtor, linked_account, new_town
from tests.support.resident import link_in, new_email
from tests.support.suite import Suite

FOLDER = "journey"
DECLARED = "2016-EAU-000001"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Journey:
    """The page, and what went wrong along the way (reported all together at the end)."""

    page: Page
    allowed_origins: set[str]
    steps: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    csp_violations: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def watch(self) -> None:
        self.page.on("console", self._on_console)
        self.page.context.on("request", self._on_request)

    def _on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.csp_violations.append(f"{self.page.url}: {message.text}")

    def _on_request(self, request: Request) -> None:
        if request.url.startswith("data:"):
            return  # an inline image the CSP allows (img-src data:); nothing leaves the machine
        if origin_of(request.url) not in self.allowed_origins:
            self.foreign_requests.append(request.url)

    async def step(self, name: str, *, portal: bool = True) -> None:
        """Screenshot at both widths; axe too on the portal's pages."""
        self.steps += 1
        await audit(self.page, FOLDER, f"{self.steps:02d}-{name}", self.failures, ours=portal)

    async def pay_by_card_on_payfip(self, name: str, amount: str, payfip: str, portal: str) -> None:
        """On PayFiP's page (the simulator) for `amount`, «Payer par carte»: back on the portal, which
        confirms the payment."""
        await self.page.wait_for_url(payfip + "/tpa/paiementws.web?idop=*")
        await expect(self.page.locator("body")).to_contain_text(amount)
        await self.step(f"payfip-{name}", portal=False)
        await self.page.get_by_role("button", name="Payer par carte").click()
        await self.page.wait_for_url(re.compile(re.escape(portal) + r"/reglement/retour\?idop="))
        await expect(self.page.get_by_role("heading", name="Paiement confirmé")).to_be_visible()
        await expect(self.page.locator("main")).to_contain_text(amount + "\u00a0€")
        await self.step(f"paiement-{name}-confirme")

    def problems(self) -> str:
        lines = [f"{where}: {what}" for where, what in self.failures.items()]
        lines += [f"CSP violation: {text}" for text in self.csp_violations]
        lines += [f"request to another origin: {url}" for url in self.foreign_requests]
        return "\n".join(lines)


async def test_resident_goes_through_the_manuals_in_chromium(suite: Suite, browser: Browser) -> None:
    town = await new_town(suite)
    email = new_email("parcours")
    new_address = new_email("nouvelle")
    password = "ma phrase de passe du portail"
    new_password = "une autre phrase bien plus longue"
    await imported_debtor(suite, town, email)
    payfip = origin_of(suite.url("payfip"))

    context = await browser.new_context(
        locale="fr-FR", viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = await context.new_page()
    journey = Journey(page, {origin_of(town.public_url), payfip})
    journey.watch()
    main = page.locator("main")
    menu = page.get_by_role("navigation", name="Menu principal")
    try:
        # --- Activation (manual: «Activer mon compte») -------------------------------------------------
        await page.goto(town.public_url + "/")
        await expect(page).to_have_title(f"Connexion – {town.data['name']} – Le portail des factures")
        await expect(page.locator("header")).to_contain_text(town.data["name"])
        await expect(page.locator("header img.entete__logo")).to_be_visible()
        await journey.step("connexion")
        await page.get_by_role("link", name="Activer mon compte").click()
        await page.get_by_label("Mon adresse").fill(email)
        await journey.step("activer")
        await page.get_by_role("button", name="Activation").click()
        await expect(page.get_by_role("heading", name="Consultez votre messagerie")).to_be_visible()
        await journey.step("activation-demandee")

        [mail] = await suite.wait_for_mail(email, subject_contains="Activez")
        await page.goto(link_in(mail.part("plain")))
        await expect(page.get_by_role("heading", name="Choisir mon mot de passe")).to_be_visible()
        await expect(page.get_by_label("Mon adresse")).to_have_value(email)
        await page.get_by_label(re.compile("^Mon mot de passe")).fill(password)
        await journey.step("choisir-mot-de-passe")
        await page.get_by_role("button", name="Enregistrer").click()
        await expect(page.get_by_role("status")).to_contain_text("Votre compte est activé")
        await journey.step("compte-active")

        # --- Login with «Se souvenir de moi» -------------------------------------------------------------
        await linked_account(suite, town, email)  # the invoices service knows whose invoices these are
        await page.get_by_label("Mon adresse").fill(email)
        await page.get_by_label("Mon mot de passe", exact=True).fill(password)
        await page.get_by_label("Se souvenir de moi").check()
        await page.get_by_role("button", name="Connexion").click()
        await page.wait_for_url(town.public_url + "/factures")
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["portail_souvenir"]["expires"] > 0, "«Se souvenir de moi» keeps a lasting cookie"
        assert cookies["portail_souvenir"]["httpOnly"]
        assert cookies["portail_session"]["expires"] == -1, "the session cookie ends with the browser"

        # --- «Mes factures», an invoice, its PDF ---------------------------------------------------------
        await expect(page.get_by_role("heading", name="Mes factures", level=1)).to_be_visible()
        await expect(page).to_have_title(re.compile(r"^Mes factures – "))
        table = page.get_by_role("table", name="Mes factures, de la plus récente à la plus ancienne")
        await expect(table.get_by_role("row")).to_have_count(6)
        await expect(main).to_contain_text("5 factures à régler")
        await journey.step("mes-factures")

        await table.get_by_role("link", name=ONE).click()
        await expect(page.get_by_role("heading", name=f"Facture {ONE}")).to_be_visible()
        await expect(page.locator(".details")).to_contain_text("37,50\u00a0€")
        await expect(page.locator(".details")).to_contain_text("À régler")
        await journey.step("facture")

        async with (
            page.expect_response(re.compile(r"/factures/[0-9a-f-]+/pdf$")) as response_info,
            page.expect_download() as download_info,
        ):
            await page.get_by_role("link", name="Télécharger la facture (PDF)").click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
        with open(await download.path(), "rb") as pdf:  # noqa: ASYNC230 (a small local file)
            assert pdf.read(5) == b"%PDF-", "the download is a PDF"
        headers = await (await response_info.value).all_headers()
        assert headers["content-type"] == "application/pdf", headers
        assert headers["cache-control"] == "no-store", headers
        assert headers["content-disposition"].startswith("attachment;"), headers

        # --- Paying one invoice on PayFiP, in the same window --------------------------------------------
        await page.get_by_role("link", name="Payer en ligne").click()
        await expect(page.get_by_role("heading", name="Paiement en ligne", exact=True)).to_be_visible()
        await expect(main).to_contain_text("Montant de la facture : 37,50")
        await journey.step("ecran-de-paiement")
        await page.get_by_role("button", name="Payer sur PayFiP").click()
        await journey.pay_by_card_on_payfip("une-facture", "37,50", payfip, town.public_url)
        assert context.pages == [page], "PayFiP opened in the same window"

        # --- Paying two together («Régler plusieurs factures») -------------------------------------------
        await menu.get_by_role("link", name="Mes factures").click()
        await page.get_by_role("link", name="Régler plusieurs factures").click()
        await expect(
            page.get_by_role("heading", name="Sélection des factures pour le règlement")
        ).to_be_visible()
        for number in TWO:
            await page.get_by_role("checkbox", name=re.compile(re.escape(number))).check()
        await expect(page.locator("#nombre-factures")).to_have_text("2")
        await expect(page.locator("#montant-regle")).to_have_text(re.compile(r"^70,40\s€$"))
        await journey.step("selection")
        await page.get_by_role("button", name="Payer les factures sélectionnées").click()
        await journey.pay_by_card_on_payfip("deux-factures", "70,40", payfip, town.public_url)

        # --- «Mes règlements» ------------------------------------------------------------------------------
        await menu.get_by_role("link", name="Mes règlements").click()
        payments = page.get_by_role("table", name="Mes règlements")
        await expect(payments.locator("tbody tr")).to_have_count(2)
        await expect(payments.locator("tbody tr").filter(has_text="payé")).to_have_count(2)
        await expect(payments).to_contain_text(ONE)
        grouped = payments.locator("tbody tr").filter(has_text="70,40")
        for number in TWO:
            await expect(grouped).to_contain_text(number)
        await journey.step("mes-reglements")

        # --- «Marquer la facture comme réglée» ----------------------------------------------------------
        await menu.get_by_role("link", name="Mes factures").click()
        await page.get_by_role("link", name=DECLARED).click()
        await page.get_by_role("link", name="Marquer la facture comme réglée").click()
        await expect(page.get_by_role("group", name="Moyen de paiement")).to_be_visible()
        await page.get_by_role("radio", name="Chèque").check()
        await page.get_by_label("Date du règlement").fill("2015-10-20")
        await page.get_by_label("Commentaire (facultatif)").fill("Chèque n° 1234567")
        await journey.step("declarer")
        await page.get_by_role("button", name="Marquer la facture comme réglée").click()
        await expect(page.get_by_role("status")).to_contain_text("Votre déclaration est enregistrée")
        await expect(page.locator(".details")).to_contain_text("Paiement déclaré")
        await journey.step("facture-declaree")

        # --- «Mes informations»: a new address, confirmed through the e-mailed link -----------------------
        await menu.get_by_role("link", name="Mes informations").click()
        await expect(page.get_by_role("heading", name="Mes informations", level=1)).to_be_visible()
        await journey.step("mes-informations")
        await page.get_by_label("Nouvelle adresse de messagerie").fill(new_address)
        await page.get_by_label("Mon mot de passe actuel", exact=True).fill(password)
        await page.get_by_role("button", name="Changer d'adresse").click()
        await expect(page.get_by_role("status")).to_contain_text("Un message vient d'être envoyé")
        await journey.step("adresse-a-confirmer")
        [mail] = await suite.wait_for_mail(new_address, subject_contains="Confirmez votre nouvelle adresse")
        await page.goto(link_in(mail.part("plain")))
        await expect(page.get_by_role("heading", name="Confirmer ma nouvelle adresse")).to_be_visible()
        await expect(main).to_contain_text(new_address)
        await journey.step("confirmer-adresse")
        await page.get_by_role("button", name="Confirmer ma nouvelle adresse").click()
        await expect(page.get_by_role("status")).to_contain_text("Votre nouvelle adresse est enregistrée")
        await expect(main).to_contain_text(new_address)

        # ... and a new password.
        await page.get_by_label("Mot de passe actuel", exact=True).fill(password)
        await page.get_by_label("Nouveau mot de passe").fill(new_password)
        await page.get_by_role("button", name="Changer de mot de passe").click()
        await expect(page.get_by_role("status")).to_contain_text("Votre mot de passe est changé")
        await journey.step("mot-de-passe-change")

        # --- «Contact» -------------------------------------------------------------------------------------
        await menu.get_by_role("link", name="Contact").click()
        await page.get_by_label("Objet").fill(f"Facture {DECLARED}")
        await page.get_by_label("Message").fill("Bonjour, j'ai réglé cette facture par chèque le 20 octobre.")
        await journey.step("contact")
        await page.get_by_role("button", name="Envoyer le message").click()
        await expect(page.get_by_role("status")).to_contain_text("Un accusé de réception")
        await suite.wait_for_mail(new_address, subject_contains="est bien reçu")
        await journey.step("message-envoye")

        # --- «Déconnexion», then the new address and password open the account ----------------------------
        await menu.get_by_role("button", name="Déconnexion").click()
        await expect(page.get_by_role("status")).to_contain_text("Vous êtes déconnecté")
        left = {c["name"] for c in await context.cookies()}
        assert not left & {"portail_session", "portail_souvenir"}, left
        await journey.step("deconnecte")
        await page.goto(town.public_url + "/factures")
        await expect(page.get_by_role("button", name="Connexion")).to_be_visible()
        await page.get_by_label("Mon adresse").fill(new_address)
        await page.get_by_label("Mon mot de passe", exact=True).fill(new_password)
        await page.get_by_role("button", name="Connexion").click()
        await expect(page.get_by_role("heading", name="Mes factures", level=1)).to_be_visible()
        await page.get_by_role("link", name="Accessibilité : non conforme").click()
        await expect(page.get_by_role("heading", name="Déclaration d'accessibilité")).to_be_visible()
        await journey.step("accessibilite")
    finally:
        await context.close()
    assert not journey.problems(), journey.problems()
