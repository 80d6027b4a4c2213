"""Paying several invoices at once (R9) through the real processes: the manual's selection screen grouped
by régie, its totals computed by the server when the browser runs no JavaScript, one PayFiP operation
under a grouping reference, every invoice paid."""

from __future__ import annotations

import re

from tests.invoices.helpers import csv_bytes, import_file
from tests.payment_pages.support import ONE, TWO, idop_of, payer, text_of
from tests.support.suite import Suite


async def test_two_invoices_of_one_regie_are_chosen_and_paid_in_one_payfip_operation(suite: Suite) -> None:
    async with payer(suite) as marie:
        first = await marie.get("/reglement/selection")
        assert first.status == 200, text_of(first.text)[:500]
        words = text_of(first.text)
        assert "Sélection des factures pour le règlement" in words
        assert "<legend>REGIE CENTRALISEE</legend>" in first.text
        assert "<legend>Régie périscolaire</legend>" in first.text
        # The water régie does not allow grouped payment: its invoice is not offered, and the page says why.
        assert "2016-EAU-000001" not in words
        assert "Les factures de « Régie de l'eau » se règlent une par une" in words
        assert "Factures sélectionnées Nombre de factures : 0 Montant réglé : 0,00 €" in words
        for number in (ONE, *TWO):
            invoice_id = marie.invoices[number]
            assert f'name="facture" value="{invoice_id}"' in first.text
            assert re.search(
                rf'<label for="facture-{invoice_id}">{number}<span class="sr-only"> du ', first.text
            )
        assert 'src="/static/js/selection.js" nonce="' in first.text
        assert 'class="selectionnee"' not in first.text

        # Without JavaScript: tick two boxes, «Mettre à jour le total», the server adds them up.
        chosen = [("facture", str(marie.invoices[n])) for n in TWO]
        update = await marie.post_form(
            "/reglement/selection", "/reglement/selection", [*chosen, ("action", "mettre-a-jour")]
        )
        assert update.status == 303
        assert update.location.startswith("/reglement/selection?facture=")
        assert "csrf_token" not in update.location
        updated = await marie.get(update.location)
        words = text_of(updated.text)
        assert "Nombre de factures : 2" in words
        assert "Montant réglé : 70,40 €" in words
        assert updated.text.count('<tr class="selectionnee">') == 2
        for number in TWO:
            assert re.search(rf'value="{marie.invoices[number]}"[^>]*\bchecked>', updated.text, re.S)

        payfip_page = await marie.leave_for_payfip(*TWO)
        idop = idop_of(payfip_page)
        operation = await marie.operation(idop)
        assert operation["fields"]["montant"] == "7040", "the invoices' amounts, as the invoices service says"
        assert re.fullmatch(r"G\d{8}[0-9A-Z]{10}", operation["fields"]["refdet"]), operation["fields"]

        back = await marie.choose_on_payfip(payfip_page, "P")
        words = text_of((await marie.get(back)).text)
        assert "Paiement confirmé" in words
        assert "Factures 2015-009-000360 (38,40 €), 2016-001-000096 (32,00 €)" in words
        assert f"Référence PayFiP {operation['fields']['refdet']}" in words
        await marie.wait_paid(*TWO)
        [payment] = await marie.payments()
        assert payment["grouped"] is True
        assert sorted(i["number"] for i in payment["items"]) == sorted(TWO)

        # Paid invoices leave the selection; the one left is still offered.
        after = await marie.get("/reglement/selection")
        assert all(str(marie.invoices[n]) not in after.text for n in TWO)
        assert str(marie.invoices[ONE]) in after.text
        history = text_of((await marie.get("/reglements")).text)
        assert "70,40 € 2015-009-000360, 2016-001-000096 payé" in history


async def test_invoices_of_two_regies_are_refused_together_with_a_french_reason(suite: Suite) -> None:
    async with payer(suite) as marie:
        chosen = [("facture", str(marie.invoices[ONE])), ("facture", str(marie.invoices["2016-PER-000001"]))]
        query = "&".join(f"{name}={value}" for name, value in chosen)
        page = await marie.get(f"/reglement/selection?{query}")
        words = text_of(page.text)
        assert "Nombre de factures : 2" in words
        assert "Montant réglé : 52,50 €" in words
        warning = re.search(
            r'<p class="alerte alerte--warning" id="avertissement-regies"( hidden)?>', page.text
        )
        assert warning is not None
        assert warning.group(1) is None, "the warning is shown, not hidden"
        assert "Les factures sélectionnées doivent être d'une seule régie" in words

        refused = await marie.post_form(
            "/reglement/selection", "/reglement/selection", [*chosen, ("action", "payer")]
        )
        assert refused.status == 409
        words = text_of(refused.text)
        assert "Les factures choisies relèvent de régies différentes" in words, (
            "the payments service's reason"
        )
        assert refused.text.count('<tr class="selectionnee">') == 2, "the selection is kept"
        assert await marie.payments() == []
        assert await marie.locks(ONE, "2016-PER-000001") == []

        nothing = await marie.post_form("/reglement/selection", "/reglement/selection", [("action", "payer")])
        assert nothing.status == 422
        assert "Sélectionnez au moins une facture à régler" in text_of(nothing.text)


async def test_an_invoice_being_paid_cannot_be_chosen_and_the_page_says_until_when(suite: Suite) -> None:
    async with payer(suite) as marie:
        await marie.leave_for_payfip(ONE)
        page = await marie.get(f"/reglement/selection?facture={marie.invoices[ONE]}")
        words = text_of(page.text)
        assert re.search(
            rf'value="{marie.invoices[ONE]}"[^>]*\bdisabled aria-describedby="verrou-', page.text, re.S
        )
        assert "Paiement en cours : à nouveau payable après le" in words
        assert "Nombre de factures : 0" in words, "a locked invoice is never counted"


async def test_the_selection_gathers_invoices_from_every_page_of_the_list(suite: Suite) -> None:
    async with payer(suite) as marie:
        # The invoices service gives 50 invoices a page: 50 more make the resident's list two pages long.
        more = [
            {
                "number": f"2017-CAN-{n:06d}",
                "issued_on": "01/02/2017",
                "due_on": "",
                "amount": "4,10",
                "object": "CANTINE SCOLAIRE",
                "regie": "CENTRALE",
                "debtor_reference": marie.debtor_reference,
                "debtor_name": "DUPONT Marie",
                "debtor_emails": marie.email,
            }
            for n in range(50)
        ]
        await import_file(suite, marie.town, csv_bytes(more))
        page = await marie.get("/reglement/selection")
        assert page.status == 200
        # 3 + 50 of the central régie, 1 of the periscolar one; the water one is paid one by one.
        assert page.text.count('name="facture"') == 54
        assert "2017-CAN-000049" in page.text
        assert ONE in page.text
