"""«Contact» (R14): the message reaches the billing office by e-mail and is kept for it; the resident gets
an acknowledgement; limits are told in French on the form, which keeps what was typed. Alerts (R15): the
resident turns them off in «Mes informations», and the next import sends them no e-mail."""

from __future__ import annotations

import asyncio
import re

from tests.invoice_pages.reading import main_text
from tests.invoice_pages.support import logged_in_resident, publish
from tests.invoices.helpers import MANUAL_ROWS, manual_rows, office, unique_email
from tests.support.resident import csrf_of
from tests.support.suite import Suite

SENT_FLASH = (
    "Votre message est envoyé au service de facturation. Un accusé de réception vient de vous être "
    "envoyé par e-mail."
)


async def test_a_contact_message_reaches_the_office_and_is_acknowledged(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    resident = household.resident
    try:
        form = await resident.get("/contact")
        assert form.status == 200
        assert "<textarea" in form.text
        assert "5\u202f000 caractères au maximum." in main_text(form.text)
        assert re.search(r'<textarea[^>]*aria-describedby="message-aide"', form.text)

        sent = await resident.submit(
            "/contact",
            {
                "subject": "Facture 2015-001-001078",
                "message": "Bonjour,\r\nLa cantine était fermée le 3.\r\nMerci",
            },
        )
        assert sent.status == 303
        assert sent.location == "/contact"
        assert SENT_FLASH in main_text((await resident.get("/contact")).text)

        [to_office] = await suite.wait_for_mail(town.data["contact_email"], subject_contains="Facture 2015")
        assert marie in to_office.subject
        assert "La cantine était fermée le 3." in to_office.part("plain")
        await suite.wait_for_mail(marie, subject_contains="est bien reçu")
        _, kept = await office(suite, town, "GET", "/office/messages")
        [message] = kept["messages"]
        assert (message["resident_email"], message["subject"]) == (marie, "Facture 2015-001-001078")
        assert message["body"] == "Bonjour,\nLa cantine était fermée le 3.\nMerci"

        # Too long or empty: said field by field, and what was typed stays.
        token = csrf_of(form.text)
        wrong = await resident.post(
            "/contact", {"csrf_token": token, "subject": "o" * 151, "message": "m" * 5001}
        )
        assert wrong.status == 422
        text = main_text(wrong.text)
        assert "L'objet dépasse 150 caractères (il en compte 151)." in text
        assert "Le message dépasse 5000 caractères (il en compte 5001)." in text
        assert "o" * 151 in wrong.text
        assert "m" * 5001 in wrong.text
        empty = await resident.post("/contact", {"csrf_token": token, "subject": " ", "message": ""})
        assert empty.status == 422
        assert "Indiquez l'objet de votre message." in main_text(empty.text)
        assert "Écrivez votre message." in main_text(empty.text)

        # The office's limit (5 an hour): the sixth is refused on the form, kept as typed, never sent.
        for n in range(2, 6):
            assert (
                await resident.post(
                    "/contact", {"csrf_token": token, "subject": f"Message {n}", "message": "…"}
                )
            ).status == 303
        limited = await resident.post(
            "/contact", {"csrf_token": token, "subject": "Encore un", "message": "Texte à garder"}
        )
        assert limited.status == 429
        text = main_text(limited.text)
        assert (
            "Vous avez déjà envoyé plusieurs messages dans l'heure : votre message n'a pas été envoyé."
            in text
        )
        assert re.search(r"Vous pourrez l'envoyer à partir du \d\d/\d\d/\d{4} à \d\d:\d\d\.", text)
        assert "Erreur 429" not in text, "the form, not an error page"
        assert 'value="Encore un"' in limited.text
        assert "Texte à garder" in limited.text
        assert limited.headers["Retry-After"].isdigit()
        _, kept = await office(suite, town, "GET", "/office/messages")
        assert len(kept["messages"]) == 5
    finally:
        await resident.close()


async def test_alerts_turned_off_in_mes_informations_stop_the_import_emails(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    await publish(suite, town, manual_rows(marie, jean))
    household = await logged_in_resident(suite, town, marie)
    resident = household.resident
    try:
        page = await resident.get("/mes-informations")
        assert "Alertes par e-mail" in main_text(page.text)
        assert re.search(r'<input type="checkbox" id="alerts" name="alerts" value="oui" checked>', page.text)
        assert "Recevoir un e-mail quand de nouvelles factures sont publiées" in page.text

        off = await resident.submit("/mes-informations", {}, action="/mes-informations/alertes")
        assert off.status == 303
        page = await resident.get("/mes-informations")
        assert "vous ne recevrez plus d'e-mail quand de nouvelles factures seront publiées" in main_text(
            page.text
        )
        assert re.search(r'<input type="checkbox" id="alerts" name="alerts" value="oui">', page.text)

        new_invoice = MANUAL_ROWS[0] | {"number": "2026-001-000001", "issued_on": "2026-01-10", "due_on": ""}
        answer = await publish(
            suite,
            town,
            [
                new_invoice | {"debtor_emails": marie},
                new_invoice
                | {
                    "number": "2026-009-000001",
                    "debtor_reference": "D0002",
                    "debtor_name": "MARTIN Jean",
                    "debtor_emails": jean,
                },
            ],
        )
        assert answer["alerts"] == 0, "Jean has no account: nobody to alert"
        await asyncio.sleep(0.3)
        assert not [m for m in suite.mail.to(marie) if "nouvelle" in m.subject]
        invoices = await resident.get("/factures")
        assert "2026-001-000001" in invoices.text, "she still sees the new invoice"

        on = await resident.submit("/mes-informations", {"alerts": "oui"}, action="/mes-informations/alertes")
        assert on.status == 303
        page = await resident.get("/mes-informations")
        assert "vous recevrez un e-mail quand de nouvelles factures seront publiées" in main_text(page.text)
        answer = await publish(
            suite, town, [new_invoice | {"number": "2026-001-000002", "debtor_emails": marie}]
        )
        assert answer["alerts"] == 1
        [alert] = await suite.wait_for_mail(marie, subject_contains="nouvelle")
        assert "2026-001-000002" in alert.part("plain")
        assert "2026-001-000001" not in alert.part("plain"), "the import while off never alerted her"
    finally:
        await resident.close()


async def test_mes_informations_says_when_the_town_sends_no_alerts(suite: Suite) -> None:
    town = await suite.create_town(alerts_enabled=False)
    marie = unique_email("marie")
    await publish(suite, town, manual_rows(marie, unique_email("jean")))
    household = await logged_in_resident(suite, town, marie)
    try:
        page = await household.resident.get("/mes-informations")
        assert "n'envoie pas d'alertes par e-mail pour le moment" in main_text(page.text)
    finally:
        await household.resident.close()
