"""Paying one invoice (R8, R10) through the real processes: the payment screen, the trip to PayFiP (the
simulator) in the same window, the return page showing what the portal confirmed with PayFiP, and every
way it can end: paid, refused, abandoned, still being checked, or not started at all."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.values import format_datetime
from tests.payment_pages.support import ONE, count, idop_of, payer, text_of
from tests.support.suite import Suite
from tests.support.waiting import eventually


async def test_resident_pays_one_invoice_on_payfip_and_the_portal_confirms_it_once(suite: Suite) -> None:
    async with payer(suite) as marie:
        invoice_id = marie.invoices[ONE]
        screen = await marie.get(f"/reglement/{invoice_id}")
        assert screen.status == 200, text_of(screen.text)[:500]
        words = text_of(screen.text)
        assert "Paiement en ligne" in words
        assert "Identifiant collectivité : 001964" in words
        assert "Montant de la facture : 37,50 €" in words
        assert "Référence de la facture : 2015RS008001516" in words
        assert "Payer sur PayFiP" in words
        assert "Retour sur la liste des factures" in words
        assert "dans cette même fenêtre" in words
        assert f'action="/reglement/{invoice_id}"' in screen.text
        assert 'target="_blank"' not in screen.text, "PayFiP opens in the same window, never a pop-up"
        assert await marie.locks(ONE) == [], "looking at the payment screen locks nothing"

        # PayFiP notifies three times: the payment must still count once.
        await marie.control("POST", "/notifications", {"mode": "duplicate", "copies": 3})
        try:
            payfip_page = await marie.leave_for_payfip(ONE)
            assert payfip_page.startswith(suite.url("payfip") + "/tpa/paiementws.web?idop=")
            idop = idop_of(payfip_page)
            operation = await marie.operation(idop)
            assert (operation["fields"]["numcli"], operation["fields"]["montant"]) == ("001964", "3750")
            assert operation["fields"]["mel"] == marie.email

            back = await marie.choose_on_payfip(payfip_page, "P")
            assert back == f"{marie.town.public_url}/reglement/retour?idop={idop}"

            async def all_notified() -> bool:
                sent = [
                    a
                    for a in (await marie.control("GET", "/notifications"))["attempts"]
                    if a["idop"] == idop and a["status"] == 200
                ]
                return len(sent) == 3

            await eventually(all_notified, what="PayFiP's three notifications answered")
        finally:
            await marie.control("POST", "/notifications", {"mode": "normal"})

        returned = await marie.get(back)
        assert returned.status == 200, text_of(returned.text)[:500]
        words = text_of(returned.text)
        numauto = (await marie.operation(idop))["result"]["numauto"]
        assert "Paiement confirmé" in words
        assert "PayFiP a confirmé votre paiement de 37,50 € par carte bancaire" in words
        assert "Un reçu vous a été envoyé par e-mail" in words
        assert f"Numéro d'autorisation {numauto}" in words
        assert ONE in words

        # The real payments.payment_succeeded → invoices path: paid once, whatever PayFiP repeated.
        await marie.wait_paid(ONE)
        [payment] = await marie.payments()
        assert (payment["state"], payment["authorisation_number"]) == ("paid", numauto)
        [receipt] = await suite.wait_for_mail(marie.email, subject_contains="Reçu de votre paiement")
        assert "37,50" in receipt.part("plain")
        assert numauto in receipt.part("plain")
        assert (
            await count(
                suite,
                "payments",
                "SELECT count(*) FROM outbox WHERE event_type = 'payments.payment_succeeded'"
                " AND envelope->'payload'->>'payment_id' = $1",
                payment["payment_id"],
            )
            == 1
        )
        assert (
            await count(
                suite, "invoices", "SELECT count(*) FROM settlements WHERE invoice_id = $1", invoice_id
            )
            == 1
        )
        assert (
            await count(
                suite,
                "invoices",
                "SELECT count(*) FROM outbox WHERE event_type = 'invoices.invoice_settled'"
                " AND envelope->'payload'->>'invoice_id' = $1",
                str(invoice_id),
            )
            == 1
        )

        history = await marie.get("/reglements")
        assert history.status == 200
        words = text_of(history.text)
        assert "Mes règlements" in words
        assert f"37,50 € {ONE} payé {numauto}" in words
        assert 'class="tableau tableau--empilable"' in history.text
        assert (
            'data-label="N° d\'autorisation"' in history.text
            or 'data-label="N° d&#39;autorisation"' in history.text
        )

        # Paid: the screen says so instead of offering to pay again.
        again = await marie.get(f"/reglement/{invoice_id}")
        assert "Payer sur PayFiP" not in text_of(again.text)
        assert "réglée" in text_of(again.text)
        assert len(suite.mail.to(marie.email)) == 2, "the activation link and one receipt, nothing more"


async def test_a_refused_card_says_so_and_the_invoice_can_be_paid_again_at_once(suite: Suite) -> None:
    async with payer(suite) as marie:
        payfip_page = await marie.leave_for_payfip(ONE)
        back = await marie.choose_on_payfip(payfip_page, "R")
        words = text_of((await marie.get(back)).text)
        assert "Paiement refusé" in words
        assert "carte refusée" in words
        assert "Rien n'a été débité" in words
        assert "Régler à nouveau" in words
        assert await marie.locks(ONE) == []

        path = f"/reglement/{marie.invoices[ONE]}"
        assert "Payer sur PayFiP" in text_of((await marie.get(path)).text)
        # An amount slipped into the form changes nothing: PayFiP is asked for what the invoice costs.
        second = await marie.post_form(path, path, {"montant": "1,00", "amount_cents": "100"})
        assert second.status == 303
        assert idop_of(second.location) != idop_of(payfip_page), "a retry is a new PayFiP operation"
        assert (await marie.operation(idop_of(second.location)))["fields"]["montant"] == "3750"


async def test_an_abandon_says_nothing_was_paid_and_until_when_the_invoice_waits(suite: Suite) -> None:
    async with payer(suite) as marie:
        payfip_page = await marie.leave_for_payfip(ONE)
        back = await marie.choose_on_payfip(payfip_page, "A")
        words = text_of((await marie.get(back)).text)
        [payment] = await marie.payments()
        # PayFiP may still turn an abandon into a payment within the operation's 15 minutes: the portal
        # says the resident left without paying, and when the invoice can be paid again.
        assert payment["provisional_result"] == "A"
        assert "Paiement abandonné" in words
        assert "Vous avez quitté PayFiP sans payer : rien n'a été débité" in words
        until = format_datetime(_parse(payment["locked_until"]))
        assert f"à partir du {until}" in words

        screen = text_of((await marie.get(f"/reglement/{marie.invoices[ONE]}")).text)
        assert "Payer sur PayFiP" not in screen
        assert f"réessayez après le {until}" in screen
        assert "Voir où en est ce paiement" in screen


async def test_a_return_before_the_result_says_it_is_being_checked_then_the_notification_settles_it(
    suite: Suite,
) -> None:
    async with payer(suite) as marie:
        payfip_page = await marie.leave_for_payfip(ONE)
        idop = idop_of(payfip_page)
        # The resident comes back before PayFiP has a result (PayFiP answers P5 «non connu»).
        back = f"/reglement/retour?idop={idop}"
        pending = await marie.get(back)
        assert pending.status == 200
        words = text_of(pending.text)
        [payment] = await marie.payments()
        assert payment["state"] == "pending"
        assert "Paiement en cours de vérification" in words
        assert "Le portail le vérifiera auprès de PayFiP" in words
        assert f"jusqu'au {format_datetime(_parse(payment['locked_until']))} au plus tard" in words
        assert f'href="/reglement/retour?idop={idop}">Actualiser' in pending.text

        # PayFiP settles it and notifies the portal (server to server); the resident is still away.
        await marie.control("POST", f"/operations/{idop}/result", {"resultrans": "V", "notify": True})
        await marie.wait_paid(ONE)
        words = text_of((await marie.get(back)).text)
        assert "Paiement confirmé" in words
        assert "par prélèvement" in words


async def test_a_second_payment_while_the_first_may_succeed_is_refused_with_why_and_until_when(
    suite: Suite,
) -> None:
    async with payer(suite) as marie:
        first = await marie.leave_for_payfip(ONE)  # the resident leaves for PayFiP, then comes back
        [payment] = await marie.payments()
        until = format_datetime(_parse(payment["locked_until"]))
        path = f"/reglement/{marie.invoices[ONE]}"

        screen = await marie.get(path)
        assert screen.status == 200
        words = text_of(screen.text)
        assert "Payer sur PayFiP" not in words
        assert f"Un paiement de la facture {ONE} est déjà en cours" in words
        assert f"réessayez après le {until}" in words
        assert f'href="/reglement/retour?idop={idop_of(first)}"' in screen.text

        # A form kept open in another tab and sent anyway: refused the same way, nothing sent to PayFiP.
        before = len((await marie.control("GET", "/operations"))["operations"])
        refused = await marie.post_form(path, path, {})
        assert refused.status == 409
        words = text_of(refused.text)
        assert "Le paiement n'a pas commencé" in words
        assert f"réessayez après le {until}" in words
        assert "rien n'a été débité" in words
        assert len((await marie.control("GET", "/operations"))["operations"]) == before


async def test_payfip_failing_at_the_start_gives_a_french_message_and_locks_nothing(suite: Suite) -> None:
    async with payer(suite) as marie:
        path = f"/reglement/{marie.invoices[ONE]}"
        try:
            await marie.control(
                "POST", "/faults", {"operation": "creerPaiementSecurise", "kind": "http_503", "count": 1}
            )
            unavailable = await marie.post_form(path, path, {})
            assert unavailable.status == 503
            words = text_of(unavailable.text)
            assert "Le paiement n'a pas commencé" in words
            assert "PayFiP ne répond pas pour le moment" in words
            assert "Aucun paiement n'a été effectué" in words
            assert "Revenir au paiement" in words
            assert await marie.locks(ONE) == []

            await marie.control(
                "POST",
                "/faults",
                {"operation": "creerPaiementSecurise", "kind": "fault", "code": "R3", "count": 1},
            )
            rejected = await marie.post_form(path, path, {})
            assert rejected.status == 502
            words = text_of(rejected.text)
            assert "PayFiP a refusé de préparer ce paiement (R3" in words
            assert "Aucun paiement n'a été effectué" in words
            assert await marie.locks(ONE) == []
        finally:
            await marie.control("DELETE", "/faults")

        # Nothing lost: once PayFiP is back, the same invoice goes to PayFiP at once.
        assert "Payer sur PayFiP" in text_of((await marie.get(path)).text)
        assert (await marie.leave_for_payfip(ONE)).startswith(suite.url("payfip"))


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)
