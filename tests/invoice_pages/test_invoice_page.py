"""An invoice's page (R7): its details, and each of its three actions either offered or refused with the
reason in French words; the lock of a payment in progress (R10) comes from the payments service. Its PDF
downloads with a safe name and is never cached."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.values import format_datetime
from tests.invoice_pages.reading import links, main_text
from tests.invoice_pages.support import (
    CLOSED_WATER_REGIES,
    Household,
    logged_in_resident,
    office_action,
    publish,
    start_payment,
)
from tests.invoices.helpers import MANUAL_ROWS, manual_rows, unique_email
from tests.support.http import browser_session
from tests.support.suite import Suite

EURO = "\u00a0€"
PAY = "Payer en ligne"
DOWNLOAD = "Télécharger la facture (PDF)"
DECLARE = "Marquer la facture comme réglée"


async def page_of(household: Household, number: str) -> tuple[str, list[str]]:
    page = await household.resident.get(f"/factures/{household.ids[number]}")
    assert page.status == 200, page.text[:300]
    return main_text(page.text), links(page.text)


def offers(household: Household, number: str, found_links: list[str]) -> set[str]:
    """Which of the three actions the page offers as links."""
    invoice_id = household.ids[number]
    targets = {
        DOWNLOAD: f"/factures/{invoice_id}/pdf",
        PAY: f"/reglement/{invoice_id}",
        DECLARE: f"/factures/{invoice_id}/declarer",
    }
    return {label for label, href in targets.items() if href in found_links}


async def test_invoice_page_offers_each_action_or_says_why_not(suite: Suite) -> None:
    town = await suite.create_town(regies=CLOSED_WATER_REGIES)
    marie = unique_email("marie")
    rows = manual_rows(marie, marie)
    rows += [
        MANUAL_ROWS[0] | {"number": "2015-001-009999", "amount": "0,50", "debtor_emails": marie},
        MANUAL_ROWS[0] | {"number": "2015-001-009998", "amount": "100 000,01", "debtor_emails": marie},
    ]
    for row in rows:  # all hers: one debtor
        row |= {"debtor_reference": "D0001", "debtor_name": "DUPONT Marie"}
    await publish(suite, town, rows)
    await office_action(suite, town, "2015-001-001205", "paid-elsewhere", {})
    await office_action(suite, town, "2016-001-000037", "cancel", {"reason": "Erreur de tarif"})
    household = await logged_in_resident(suite, town, marie)
    try:
        # An unpaid invoice: its details and every action.
        text, found = await page_of(household, "2015-001-001078")
        for words in (
            "Facture 2015-001-001078",
            "Numéro 2015-001-001078",
            "Objet FACTURATION",
            "Date 02/09/2015",
            "Echéance 31/08/2016",
            f"Montant 25,00{EURO}",
            "État À régler",
            "Redevable DUPONT Marie",
            "Régie REGIE CENTRALISEE",
        ):
            assert words in text, words
        assert offers(household, "2015-001-001078", found) == {DOWNLOAD, PAY, DECLARE}
        assert "non disponible" not in text

        expected = {
            "2015-001-001205": ("Cette facture est déjà réglée.", {DOWNLOAD}),
            "2016-001-000037": ("Cette facture a été annulée par le service de facturation.", {DOWNLOAD}),
            "2015-001-009999": (
                "Le paiement en ligne n'accepte que les montants de 1,00 € à 100 000,00 €.",
                {DOWNLOAD, DECLARE},
            ),
            "2015-001-009998": (
                "Le paiement en ligne n'accepte que les montants de 1,00 € à 100 000,00 €.",
                {DOWNLOAD, DECLARE},
            ),
            "2015-RS-00-8001516": ("Cette régie n'accepte pas le paiement en ligne.", {DOWNLOAD, DECLARE}),
        }
        for number, (reason, offered) in expected.items():
            text, found = await page_of(household, number)
            assert offers(household, number, found) == offered, number
            assert f"{PAY} : non disponible. {reason}" in text, (number, text)
        text, _ = await page_of(household, "2015-001-001205")
        assert f"{DECLARE} : non disponible. Cette facture est déjà réglée." in text
        assert "État Réglée" in text
        text, _ = await page_of(household, "2016-001-000037")
        assert "Motif de l'annulation Erreur de tarif" in text
        assert "État Annulée" in text
    finally:
        await household.resident.close()


async def test_a_payment_in_progress_blocks_paying_again_and_says_until_when(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    try:
        payment = await start_payment(suite, household, "2015-001-001078")
        until = format_datetime(datetime.fromisoformat(payment["locked_until"]))
        text, found = await page_of(household, "2015-001-001078")
        assert offers(household, "2015-001-001078", found) == {DOWNLOAD, DECLARE}
        assert (
            f"{PAY} : non disponible. Un paiement en ligne de cette facture est en cours de vérification : "
            f"une nouvelle tentative sera possible après le {until}." in text
        )
        # Another of her invoices is not concerned.
        _, found = await page_of(household, "2016-001-000096")
        assert PAY in offers(household, "2016-001-000096", found)
    finally:
        await household.resident.close()


async def test_the_pdf_downloads_with_a_safe_name_and_is_never_cached(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    try:
        invoice_id = household.ids["2015-001-001078"]
        async with household.resident.http.get(
            f"{town.public_url}/factures/{invoice_id}/pdf", allow_redirects=False
        ) as response:
            body = await response.read()
            headers = response.headers
            assert response.status == 200
        assert headers["Content-Type"] == "application/pdf"
        assert headers["Content-Disposition"] == 'attachment; filename="facture-2015-001-001078.pdf"'
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in headers["Content-Security-Policy"], "the security headers too"
        assert body.startswith(b"%PDF")
        assert body.rstrip().endswith(b"%%EOF")
        async with household.resident.http.head(
            f"{town.public_url}/factures/{invoice_id}/pdf", allow_redirects=False
        ) as head:
            assert head.status == 200
            assert head.headers["Content-Disposition"] == headers["Content-Disposition"]

        async with (
            browser_session() as stranger,
            stranger.get(f"{town.public_url}/factures/{invoice_id}/pdf", allow_redirects=False) as anonymous,
        ):
            assert anonymous.status == 303, "a browser without her session goes to the login page"
            assert anonymous.headers["Location"].startswith("/?suite=")
            assert not (await anonymous.read()).startswith(b"%PDF")
    finally:
        await household.resident.close()
