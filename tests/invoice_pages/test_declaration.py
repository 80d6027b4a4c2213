"""«Marquer la facture comme réglée» (R11): the resident says how and when they paid; mistakes are told
field by field, what was typed stays; once recorded, the invoice reads «paiement déclaré»."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from shared.contracts.values import PARIS
from tests.invoice_pages.reading import links, main_text, table_rows
from tests.invoice_pages.support import logged_in_resident, publish
from tests.invoices.helpers import manual_rows, office, unique_email
from tests.support.resident import csrf_of
from tests.support.suite import Suite

DECLARED_FLASH = (
    "Votre déclaration est enregistrée : la facture apparaît comme «\u00a0paiement déclaré\u00a0» jusqu'à ce que "
    "le service de facturation la confirme."
)


def described_by(html: str, field_id: str) -> str:
    """The aria-describedby of the element with this id."""
    match = re.search(rf'<[^>]*\bid="{field_id}"[^>]*>', html)
    assert match, f"no element #{field_id}"
    found = re.search(r'aria-describedby="([^"]*)"', match.group(0))
    return found.group(1) if found else ""


async def test_declaring_a_payment_marks_the_invoice_paiement_declare(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    resident = household.resident
    invoice_id = household.ids["2016-001-000096"]
    form_path = f"/factures/{invoice_id}/declarer"
    try:
        form = await resident.get(form_path)
        assert form.status == 200
        for words in ("<legend>Moyen de paiement", 'type="radio"', 'type="date"', "Date du règlement"):
            assert words in form.text, words
        for label in ("Chèque", "Espèces", "Virement", "Autre moyen"):
            assert label in main_text(form.text)
        token = csrf_of(form.text)

        # Nothing chosen, a date in the future, a comment too long: each field says what is wrong.
        tomorrow = (datetime.now(PARIS) + timedelta(days=1)).date().isoformat()
        wrong = await resident.post(
            form_path, {"csrf_token": token, "paid_on": tomorrow, "comment": "x" * 501}
        )
        assert wrong.status == 422
        text = main_text(wrong.text)
        assert "Le formulaire contient 3 erreurs" in text
        assert "Choisissez comment vous avez réglé la facture." in text
        assert "La date du règlement ne peut pas être dans le futur." in text
        assert "Le commentaire dépasse 500 caractères" in text
        assert "paid_on-erreur" in described_by(wrong.text, "paid_on")
        assert "comment-erreur" in described_by(wrong.text, "comment")
        assert re.search(r'<fieldset[^>]*aria-describedby="method-erreur"', wrong.text)
        assert f'value="{tomorrow}"' in wrong.text, "what was typed stays"
        assert "x" * 501 in wrong.text

        unreadable = await resident.post(
            form_path, {"csrf_token": token, "method": "cheque", "paid_on": "31/02/2026"}
        )
        assert unreadable.status == 422
        assert "Indiquez une date valide, par exemple 02/09/2015." in main_text(unreadable.text)
        assert re.search(r'value="cheque" checked', unreadable.text), "the chosen button stays chosen"

        listed = await office(suite, town, "GET", "/office/declarations")
        assert listed[1]["declarations"] == [], "nothing was recorded by the refused forms"

        # A right one, the date typed the French way (a browser without a date picker).
        done = await resident.post(
            form_path,
            {
                "csrf_token": token,
                "method": "cheque",
                "paid_on": "20/10/2015",
                "comment": "Chèque n° 1234567",
            },
        )
        assert done.status == 303
        assert done.location == f"/factures/{invoice_id}"
        page = await resident.get(done.location)
        text = main_text(page.text)
        assert DECLARED_FLASH in text
        assert "État Paiement déclaré" in text
        assert "vous avez déclaré avoir réglé cette facture le 20/10/2015 par chèque" in text
        assert "Marquer la facture comme réglée : non disponible. Vous avez déclaré avoir réglé" in text
        assert f"/reglement/{invoice_id}" not in links(page.text), "no online payment meanwhile"

        again = await resident.get("/factures")
        row = next(r for r in table_rows(again.text) if "2016-001-000096" in r.texts)
        assert row.texts[-1] == "Paiement déclaré"
        assert "reglee" not in row.classes, "declared is not paid until the office confirms"

        _, body = await office(suite, town, "GET", "/office/declarations")
        [declaration] = body["declarations"]
        assert (declaration["invoice_number"], declaration["method"], declaration["paid_on"]) == (
            "2016-001-000096",
            "cheque",
            "2015-10-20",
        )
        assert declaration["comment"] == "Chèque n° 1234567"

        # Declaring twice: the form is not offered again, and a replayed post changes nothing.
        form_again = await resident.get(form_path)
        assert "Vous avez déclaré avoir réglé cette facture" in main_text(form_again.text)
        assert '<form method="post" action="/factures/' not in form_again.text
        replay = await resident.post(
            form_path, {"csrf_token": token, "method": "cash", "paid_on": "2015-10-21"}
        )
        assert replay.status == 409
        assert "Vous avez déclaré avoir réglé cette facture" in main_text(replay.text)
        _, body = await office(suite, town, "GET", "/office/declarations")
        assert len(body["declarations"]) == 1
    finally:
        await resident.close()
