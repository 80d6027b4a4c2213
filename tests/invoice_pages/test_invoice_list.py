"""«Mes factures» (R6) through the real gateway and services: the manual's columns and formats, newest
first, paid rows on yellow and their state in words, totals, pagination, the grouped payment link."""

from __future__ import annotations

from tests.invoice_pages.reading import captions, links, main_text, table_rows
from tests.invoice_pages.support import logged_in_resident, office_action, publish
from tests.invoices.helpers import MANUAL_ROWS, manual_rows, unique_email
from tests.support.suite import Suite

EURO = "\u00a0€"


async def test_mes_factures_shows_the_manuals_invoices_newest_first_with_paid_ones_on_yellow(
    suite: Suite,
) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    await publish(suite, town, manual_rows(marie, jean))
    await office_action(suite, town, "2015-001-001205", "paid-elsewhere", {})
    household = await logged_in_resident(suite, town, marie)
    try:
        page = await household.resident.get("/factures")
        assert page.status == 200
        assert "<title>Mes factures – " in page.text
        rows = table_rows(page.text)
        header, body = rows[0], rows[1:]
        assert [(c.tag, c.attrs.get("scope"), c.text) for c in header.cells] == [
            ("th", "col", "Date"),
            ("th", "col", "Echéance"),
            ("th", "col", "Montant"),
            ("th", "col", "Numéro"),
            ("th", "col", "Objet"),
            ("th", "col", "État"),
        ]
        assert captions(page.text) == ["Mes factures, de la plus récente à la plus ancienne"]
        assert [r.texts for r in body] == [
            ["19/10/2015", "30/10/2015", f"32,00{EURO}", "2016-001-000096", "FACTURATION", "À régler"],
            ["01/10/2015", "15/10/2015", f"10,00{EURO}", "2016-001-000037", "FACTURATION", "À régler"],
            ["02/09/2015", "31/08/2016", f"25,00{EURO}", "2015-001-001078", "FACTURATION", "À régler"],
            ["01/09/2015", "30/09/2015", f"10,00{EURO}", "2015-001-001205", "FACTURATION", "Réglée"],
        ]
        assert [("reglee" in r.classes) for r in body] == [False, False, False, True]
        # Each number opens its invoice; on a phone each cell says which column it belongs to.
        assert [r.links for r in body] == [[f"/factures/{household.ids[r.texts[3]]}"] for r in body]
        labels = ["Date", "Echéance", "Montant", "Numéro", "Objet", "État"]
        assert all([c.attrs.get("data-label") for c in r.cells] == labels for r in body)
        assert 'class="tableau tableau--empilable' in page.text
        text = main_text(page.text)
        assert f"3 factures à régler, pour un montant de 67,00{EURO}." in text
        # Three unpaid invoices of a régie that takes grouped payments.
        assert "/reglement/selection" in links(page.text)
        assert "2015-009-000360" not in text, "only her own invoices, not Jean's"
        assert "2015-RS-00-8001516" not in text, "only her own invoices, not Jean's"
        assert 'aria-label="Pagination"' not in page.text, "one page: no pagination"
    finally:
        await household.resident.close()


async def test_no_grouped_payment_link_without_two_unpaid_invoices_of_a_grouping_regie(suite: Suite) -> None:
    town = await suite.create_town()
    jean = unique_email("jean")
    # Jean has one unpaid invoice in the central régie (grouping allowed) and one of water (not allowed).
    await publish(suite, town, manual_rows(unique_email("marie"), jean))
    household = await logged_in_resident(suite, town, jean)
    try:
        page = await household.resident.get("/factures")
        assert [r.texts[3] for r in table_rows(page.text)[1:]] == ["2015-RS-00-8001516", "2015-009-000360"]
        assert "/reglement/selection" not in links(page.text)
        assert "Régler plusieurs factures" not in page.text
    finally:
        await household.resident.close()


async def test_a_resident_without_invoices_reads_so_in_french(suite: Suite) -> None:
    town = await suite.create_town()
    lucie = unique_email("lucie")
    # The office knows Lucie as a debtor but has published no invoice for her yet.
    await suite.call(
        "PUT",
        "invoices",
        "/office/debtors/D0099",
        json={"name": "MOREAU Lucie", "emails": [lucie]},
        headers=town.office_headers,
        expect=200,
    )
    household = await logged_in_resident(suite, town, lucie)
    try:
        page = await household.resident.get("/factures")
        assert page.status == 200
        assert "Vous n'avez aucune facture pour le moment." in main_text(page.text)
        assert "<table" not in page.text
    finally:
        await household.resident.close()


async def test_mes_factures_is_paginated_beyond_50_rows(suite: Suite) -> None:
    town = await suite.create_town()
    marie = unique_email("marie")
    rows = [
        MANUAL_ROWS[0]
        | {
            "number": f"2026-001-{i:06d}",
            "issued_on": f"2026-{1 + i // 28:02d}-{1 + i % 28:02d}",
            "due_on": "",
            "debtor_emails": marie,
        }
        for i in range(120)
    ]
    await publish(suite, town, rows)
    household = await logged_in_resident(suite, town, marie)
    try:
        resident = household.resident
        seen: list[str] = []
        for number, expected_rows in ((1, 50), (2, 50), (3, 20)):
            page = await resident.get(f"/factures?page={number}" if number > 1 else "/factures")
            assert page.status == 200
            body = table_rows(page.text)[1:]
            assert len(body) == expected_rows
            seen += [r.texts[3] for r in body]
            assert f"(page {number} sur 3, 120 factures)" in captions(page.text)[0]
            assert '<nav aria-label="Pagination">' in page.text
            assert (
                f'href="/factures?page={number}" aria-label="Page {number}" aria-current="page"' in page.text
            )
            assert page.text.count('aria-current="page"') == 2, "the menu's «Mes factures» and this page"
            assert ('rel="next"' in page.text) == (number < 3)
            assert ('rel="prev"' in page.text) == (number > 1)
        assert seen == [f"2026-001-{i:06d}" for i in reversed(range(120))], "newest first, each once"
        assert f"120 factures à régler, pour un montant de 3{chr(0x202F)}000,00{EURO}." in main_text(
            page.text
        )

        for beyond in ("/factures?page=4", "/factures?page=0", "/factures?page=abc", "/factures?page=-1"):
            missing = await resident.get(beyond)
            assert missing.status == 404, beyond
            assert "Page introuvable" in missing.text
    finally:
        await household.resident.close()
