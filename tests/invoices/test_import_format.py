"""The import format, row by row, without a database: every rule with its line number and French words."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.invoices.import_format import (
    COLUMNS,
    ImportLimits,
    ImportRejected,
    ParsedImport,
    derive_payfip_reference,
    neutralise_formula,
    parse_amount,
    parse_csv,
    parse_date,
    parse_json_rows,
    parse_zip,
    write_csv,
)
from services.invoices.pdf import InvoiceDocument, render_invoice_pdf
from tests.invoices.helpers import MANUAL_ROWS

REGIES = ("CENTRALE", "EAU")
HEADER = ";".join(COLUMNS)


def row(**changes: str) -> dict[str, str]:
    return MANUAL_ROWS[0] | {"debtor_emails": "marie.dupont@example.org"} | changes


def csv_of(*rows: dict[str, str]) -> bytes:
    return write_csv(rows).encode()


def rejected(data: bytes, **kwargs: object) -> ImportRejected:
    with pytest.raises(ImportRejected) as caught:
        parse_csv(data, regie_codes=REGIES, **kwargs)  # type: ignore[arg-type]
    return caught.value


def only(problem_list: ImportRejected) -> tuple[int, str | None, str, str]:
    assert len(problem_list.problems) == 1, problem_list.problems
    p = problem_list.problems[0]
    return p.line, p.field, p.code, p.message


# --- what goes through ----------------------------------------------------------------------------


def test_manual_rows_parse_with_cents_dates_and_derived_payfip_reference() -> None:
    parsed = parse_csv(
        csv_of(*(r | {"debtor_emails": "m@example.org"} for r in MANUAL_ROWS)), regie_codes=REGIES
    )
    first = parsed.rows[0]
    assert (first.line, first.number, first.amount_cents) == (2, "2015-001-001078", 2500)
    assert (first.issued_on, first.due_on) == (date(2015, 9, 2), date(2016, 8, 31))
    assert (first.payfip_reference, first.payfip_year) == ("2015001001078", 2015)
    assert [r.amount_cents for r in parsed.rows] == [2500, 3200, 1000, 1000, 3840, 3750]
    assert parsed.rows[-1].payfip_reference == "2015RS008001516"
    assert parsed.encoding == "utf-8"
    assert [d.reference for d in parsed.debtors] == ["D0001", "D0002"]


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("25", 2500),
        ("25,00", 2500),
        ("25.00", 2500),
        ("25,5", 2550),
        ("0,07", 7),
        ("1 234,56", 123456),
        ("1\u00a0234,56", 123456),
        ("1\u202f234,56", 123456),
        ("37,50 €", 3750),
        ("0", 0),
    ],
)
def test_amounts_in_euros_with_comma_or_dot_become_cents(text: str, cents: int) -> None:
    assert parse_amount(text) == cents


@pytest.mark.parametrize(
    "text", ["-5", "25,001", "1.234,56", "1,234.56", "abc", "", "25 €50", "1e3", "12 34,00"]
)
def test_ambiguous_or_bad_amounts_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Montant"):
        parse_amount(text)


def test_dates_french_and_iso() -> None:
    assert parse_date("02/09/2015") == date(2015, 9, 2)
    assert parse_date("2/9/2015") == date(2015, 9, 2)
    assert parse_date("2015-09-02") == date(2015, 9, 2)
    for bad in ("31/02/2015", "2015/09/02", "09-02-2015", "02/09/15", "1999-12-31", "demain"):
        with pytest.raises(ValueError, match="Date"):
            parse_date(bad)


def test_bom_is_read_as_utf8() -> None:
    parsed = parse_csv(b"\xef\xbb\xbf" + csv_of(row(object="Cantine école")), regie_codes=REGIES)
    assert parsed.encoding == "utf-8-sig"
    assert parsed.rows[0].object == "Cantine école"
    assert parsed.rows[0].number == "2015-001-001078"  # the BOM did not stick to the first column


def test_latin1_file_is_read_as_windows_1252_and_says_so() -> None:
    parsed = parse_csv(
        write_csv([row(object="Cantine école été", debtor_name="LEFÈVRE Zoé")]).encode("latin-1"),
        regie_codes=REGIES,
    )
    assert parsed.encoding == "windows-1252"
    assert parsed.rows[0].object == "Cantine école été"
    assert parsed.rows[0].debtor_name == "LEFÈVRE Zoé"
    assert "Windows-1252" in parsed.warnings[0]


def test_windows_1252_euro_sign_and_oe_ligature_are_read_right() -> None:
    parsed = parse_csv(write_csv([row(object="Œuvres — 5 €")]).encode("cp1252"), regie_codes=REGIES)
    assert parsed.rows[0].object == "Œuvres — 5 €"


def test_comma_separated_file_is_accepted_when_its_header_says_so() -> None:
    data = (
        ",".join(COLUMNS)
        + "\n"
        + '2015-001-001078,02/09/2015,,"25,00",FACTURATION,CENTRALE,D1,DUPONT Marie,,,\n'
    ).encode()
    assert parse_csv(data, regie_codes=REGIES).rows[0].amount_cents == 2500


def test_optional_columns_may_be_left_out_and_blank_lines_are_ignored() -> None:
    data = b"number;issued_on;amount;object;regie;debtor_reference;debtor_name\n\n2015-100;2015-09-02;1;X;EAU;D1;A\n\n"
    parsed = parse_csv(data, regie_codes=REGIES)
    assert parsed.rows[0].line == 3
    assert parsed.rows[0].debtor_emails == ()
    assert parsed.rows[0].due_on is None
    assert (parsed.rows[0].payfip_reference, parsed.rows[0].payfip_year) == ("2015100", 2015)


def test_emails_are_normalised_deduplicated_and_split_on_commas_semicolons_spaces() -> None:
    parsed = parse_csv(
        csv_of(row(debtor_emails="A@Example.org, b@example.org;a@example.org  c@example.org")),
        regie_codes=REGIES,
    )
    assert parsed.rows[0].debtor_emails == ("a@example.org", "b@example.org", "c@example.org")


def test_given_payfip_reference_and_year_are_kept() -> None:
    parsed = parse_csv(csv_of(row(payfip_reference="ABC123XYZ", payfip_year="2016")), regie_codes=REGIES)
    assert (parsed.rows[0].payfip_reference, parsed.rows[0].payfip_year) == ("ABC123XYZ", 2016)


# --- what is refused, with its line ---------------------------------------------------------------


def test_wrong_header_lists_missing_and_unknown_columns_on_line_1() -> None:
    error = rejected(b"numero;date;montant\n1;02/09/2015;25\n")
    assert {p.code for p in error.problems} == {"unknown_columns", "missing_columns"}
    assert all(p.line == 1 for p in error.problems)
    missing = next(p for p in error.problems if p.code == "missing_columns")
    assert "colonne(s) obligatoire(s) absente(s) : number, issued_on, amount" in missing.message
    assert "rien n'a été importé" in error.summary


def test_duplicated_column_is_refused() -> None:
    error = rejected((HEADER + ";number\n").encode())
    assert [p.code for p in error.problems] == ["duplicate_columns"]


def test_bad_amount_is_reported_with_its_line_and_column() -> None:
    error = rejected(
        csv_of(row(), row(number="2015-002", amount="12,345"), row(number="2015-003", amount="-4"))
    )
    assert [(p.line, p.field, p.code) for p in error.problems] == [
        (3, "amount", "invalid_amount"),
        (4, "amount", "invalid_amount"),
    ]
    assert error.problems[0].message.startswith("Montant invalide « 12,345 »")
    assert "négatif" in error.problems[1].message


def test_bad_dates_and_due_date_before_issue_are_reported() -> None:
    error = rejected(csv_of(row(issued_on="31/02/2015"), row(number="2015-002", due_on="01/01/2015")))
    assert [(p.line, p.field, p.code) for p in error.problems] == [
        (2, "issued_on", "invalid_date"),
        (3, "due_on", "due_before_issue"),
    ]
    assert error.problems[0].message == "Date impossible « 31/02/2015 »."


def test_duplicated_number_in_one_file_names_the_first_line() -> None:
    error = rejected(csv_of(row(), row(number="2015-002"), row()))
    assert only(error) == (
        4,
        "number",
        "duplicate_number",
        "Le numéro 2015-001-001078 figure déjà ligne 2 : chaque facture n'apparaît qu'une fois.",
    )


def test_unknown_regie_lists_the_towns_regies() -> None:
    error = rejected(csv_of(row(regie="PISCINE")))
    assert only(error) == (
        2,
        "regie",
        "unknown_regie",
        "Régie inconnue « PISCINE » (régies de la commune : CENTRALE, EAU).",
    )


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@"])
def test_spreadsheet_formulas_are_refused_in_every_text_cell(prefix: str) -> None:
    error = rejected(
        csv_of(
            row(object=prefix + 'HYPERLINK("http://x")'), row(number="2015-002", debtor_name=prefix + "1+1")
        )
    )
    assert [(p.line, p.field, p.code) for p in error.problems] == [
        (2, "object", "formula_refused"),
        (3, "debtor_name", "formula_refused"),
    ]
    assert f"commence par « {prefix} »" in error.problems[0].message
    assert "formules de tableur sont refusées" in error.problems[0].message


def test_formula_hidden_behind_spaces_is_refused_too() -> None:
    assert only(rejected(csv_of(row(object="   =1+1"))))[2] == "formula_refused"


def test_tab_and_line_breaks_inside_a_cell_are_refused() -> None:
    data = (
        HEADER
        + '\n2015-100;02/09/2015;;25;"deux\nlignes";CENTRALE;D1;A;;;\n2015-200;02/09/2015;;25;\tx;CENTRALE;D1;A;;;\n'
    ).encode()
    error = rejected(data)
    assert [(p.line, p.field, p.code) for p in error.problems] == [
        (2, "object", "invalid_characters"),
        (4, "object", "invalid_characters"),
    ]


def test_bad_emails_and_too_many_emails() -> None:
    error = rejected(
        csv_of(
            row(debtor_emails="marie@"),
            row(
                number="2015-002",
                debtor_reference="D9",
                debtor_emails=" ".join(f"a{i}@example.org" for i in range(11)),
            ),
        )
    )
    assert [(p.line, p.code) for p in error.problems] == [(2, "invalid_email"), (3, "too_many_emails")]
    assert error.problems[0].message == "Adresse de messagerie invalide « marie@ »."


def test_field_lengths_are_limited() -> None:
    error = rejected(csv_of(row(object="x" * 201), row(number="N" * 41)))
    assert [(p.line, p.field, p.code) for p in error.problems] == [
        (2, "object", "too_long"),
        (3, "number", "too_long"),
    ]
    assert "dépasse 200 caractères" in error.problems[0].message


def test_invoice_number_charset_keeps_urls_and_file_names_safe() -> None:
    assert only(rejected(csv_of(row(number="2015/001"))))[2] == "invalid_number"
    assert only(rejected(csv_of(row(number="../etc"))))[2] == "invalid_number"


def test_payfip_reference_too_short_when_derived_or_invalid_when_given() -> None:
    error = rejected(csv_of(row(number="A-1"), row(number="2015-200", payfip_reference="AB CD 1234")))
    assert [(p.line, p.code) for p in error.problems] == [
        (2, "invalid_payfip_reference"),
        (3, "invalid_payfip_reference"),
    ]
    assert "tirée du numéro A-1" in error.problems[0].message


def test_a_debtor_must_have_the_same_name_and_emails_on_all_its_rows() -> None:
    error = rejected(csv_of(row(), row(number="2015-002", debtor_name="DUPONT Marie-Claire")))
    assert only(error)[:3] == (3, "debtor_reference", "conflicting_debtor")


def test_wrong_number_of_cells() -> None:
    data = (HEADER + "\n2015-100;02/09/2015;;25;X;CENTRALE;D1;A;;\n").encode()
    assert only(rejected(data))[:3] == (2, None, "wrong_cell_count")


def test_every_bad_row_is_listed_not_only_the_first() -> None:
    rows = [row(number=f"N{i:06d}", amount="abc" if i % 2 else "1") for i in range(1, 301)]
    error = rejected(csv_of(*rows))
    assert [p.line for p in error.problems] == list(range(2, 302, 2))
    assert error.summary.startswith("150 erreurs sur 150 lignes : rien n'a été importé.")


def test_too_many_rows_and_too_big_a_file_are_refused_whole() -> None:
    rows = [row(number=f"N{i:06d}") for i in range(11)]
    error = rejected(csv_of(*rows), limits=ImportLimits(max_rows=10))
    assert only(error)[2:] == (
        "too_many_rows",
        "Plus de 10 factures dans un fichier : découpez-le en plusieurs.",
    )
    error = rejected(csv_of(*rows), limits=ImportLimits(max_csv_bytes=1024))
    assert only(error)[2] == "file_too_large"
    assert "découpez-le" in only(error)[3]


def test_empty_file_and_header_only() -> None:
    assert only(rejected(b""))[2:] == ("empty_file", "Le fichier est vide.")
    assert only(rejected((HEADER + "\n").encode()))[2:] == (
        "no_rows",
        "Le fichier ne contient aucune facture.",
    )


def test_utf16_and_mixed_encodings_are_refused_with_a_clear_message() -> None:
    assert "UTF-16" in only(rejected(write_csv([row()]).encode("utf-16")))[3]
    mixed = write_csv([row(object="école"), row(number="2015-002", object="été")])
    data = mixed.replace("été", "ÉTÉ").encode("utf-8").replace("ÉTÉ".encode(), "été".encode("latin-1"))
    line, _, code, message = only(rejected(data))
    assert (line, code) == (3, "invalid_encoding")
    assert "mélange" in message


def test_unquoted_quote_is_a_readable_error_on_its_line() -> None:
    data = (HEADER + '\n2015-100;02/09/2015;;25;"X"Y;CENTRALE;D1;A;;;\n').encode()
    assert only(rejected(data))[:3] == (2, None, "invalid_csv")


# --- JSON ---------------------------------------------------------------------------------------------


def test_json_rows_take_cents_lists_of_emails_and_report_positions() -> None:
    parsed = parse_json_rows(
        [
            {
                "number": "2015-100",
                "issued_on": "2015-09-02",
                "amount_cents": 2500,
                "object": "X",
                "regie": "EAU",
                "debtor_reference": "D1",
                "debtor_name": "A",
                "debtor_emails": ["A@example.org"],
                "payfip_year": 2016,
            },
        ],
        regie_codes=REGIES,
    )
    assert (parsed.rows[0].amount_cents, parsed.rows[0].debtor_emails, parsed.rows[0].payfip_year) == (
        2500,
        ("a@example.org",),
        2016,
    )
    with pytest.raises(ImportRejected) as caught:
        parse_json_rows(
            [
                {
                    "number": "2015-100",
                    "issued_on": "2015-09-02",
                    "amount": "1",
                    "object": "X",
                    "regie": "EAU",
                    "debtor_reference": "D1",
                    "debtor_name": "A",
                },
                {
                    "number": "2015-200",
                    "issued_on": "2015-09-02",
                    "amount": 12.5,
                    "object": "X",
                    "regie": "EAU",
                    "debtor_reference": "D1",
                    "debtor_name": "A",
                },
                {"numero": "x"},
                "not an object",
                {
                    "number": "2015-300",
                    "issued_on": "2015-09-02",
                    "amount_cents": True,
                    "object": "X",
                    "regie": "EAU",
                    "debtor_reference": "D1",
                    "debtor_name": "A",
                },
            ],
            regie_codes=REGIES,
        )
    assert [(p.line, p.code) for p in caught.value.problems] == [
        (2, "invalid_amount"),
        (3, "unknown_fields"),
        (4, "invalid_row"),
        (5, "invalid_amount"),
    ]


# --- zip ------------------------------------------------------------------------------------------------


def a_pdf(number: str = "2015-001-001078") -> bytes:
    return render_invoice_pdf(
        InvoiceDocument(
            "Commune",
            "http://x.localhost",
            "f@x.localhost",
            "REGIE",
            "001964",
            number,
            date(2015, 9, 2),
            None,
            2500,
            "OBJET",
            "NOM",
            "D1",
            "2015001001078",
            2015,
        )
    )


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_zip_brings_the_csv_and_pdfs_named_by_number() -> None:
    parsed = parse_zip(
        zip_of(
            {
                "factures/export.csv": csv_of(row(), row(number="2015-002")),
                "factures/2015-001-001078.pdf": a_pdf(),
                "__MACOSX/._x.pdf": b"junk",
            }
        ),
        regie_codes=REGIES,
    )
    assert len(parsed.rows) == 2
    assert set(parsed.pdfs) == {"2015-001-001078"}


def test_zip_problems_are_listed_with_the_file_names() -> None:
    with pytest.raises(ImportRejected) as caught:
        parse_zip(
            zip_of(
                {
                    "a.csv": csv_of(row()),
                    "9999.pdf": a_pdf(),
                    "2015-001-001078.pdf": b"<html>",
                    "notes.txt": b"x",
                }
            ),
            regie_codes=REGIES,
        )
    assert sorted((p.field, p.code) for p in caught.value.problems) == [
        ("2015-001-001078.pdf", "invalid_pdf"),
        ("9999.pdf", "pdf_without_invoice"),
        ("notes.txt", "unexpected_file"),
    ]


def test_zip_without_csv_or_not_a_zip() -> None:
    with pytest.raises(ImportRejected, match=r"pas de fichier \.csv"):
        parse_zip(zip_of({"x.pdf": a_pdf()}), regie_codes=REGIES)
    with pytest.raises(ImportRejected, match="pas un zip"):
        parse_zip(b"PK not really", regie_codes=REGIES)


def test_zip_bomb_is_stopped_at_the_size_limit_whatever_its_headers_say() -> None:
    bomb = zip_of({"a.csv": csv_of(row()), "2015-001-001078.pdf": b"%PDF-" + b"0" * (6 * 1024**2)})
    with pytest.raises(ImportRejected) as caught:
        parse_zip(bomb, regie_codes=REGIES, limits=ImportLimits(max_pdf_bytes=5 * 1024**2))
    assert [p.code for p in caught.value.problems] == ["pdf_too_large"]


# --- properties ----------------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "Zs", "P", "S"), exclude_characters="\u2028\u2029"
    ),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() and not s.lstrip(" ").startswith(("=", "+", "-", "@")))


@st.composite
def valid_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    count = draw(st.integers(min_value=1, max_value=20))
    numbers = draw(
        st.lists(
            st.from_regex(r"[A-Z0-9]{6,12}", fullmatch=True), min_size=count, max_size=count, unique=True
        )
    )
    rows = []
    for number in numbers:
        cents = draw(st.integers(min_value=0, max_value=10**9))
        issued = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
        rows.append(
            {
                "number": number,
                "issued_on": draw(st.sampled_from([issued.strftime("%d/%m/%Y"), issued.isoformat()])),
                "amount": f"{cents // 100}{draw(st.sampled_from([',', '.']))}{cents % 100:02d}",
                "object": draw(_TEXT),
                "regie": draw(st.sampled_from(REGIES)),
                "debtor_reference": "D" + number,
                "debtor_name": draw(_TEXT),
            }
        )
    return rows


@settings(max_examples=150, deadline=None)
@given(rows=valid_rows(), bom=st.booleans())
def test_property_written_rows_read_back_the_same(rows: list[dict[str, str]], bom: bool) -> None:
    data = write_csv(rows).encode()
    parsed = parse_csv((b"\xef\xbb\xbf" if bom else b"") + data, regie_codes=REGIES)
    assert [r.number for r in parsed.rows] == [r["number"] for r in rows]
    assert [r.object for r in parsed.rows] == [r["object"].strip() for r in rows]
    assert [r.debtor_name for r in parsed.rows] == [r["debtor_name"].strip() for r in rows]
    # Two decimals always written here: the cents are the digits.
    assert [r.amount_cents for r in parsed.rows] == [
        int(r["amount"].replace(",", "").replace(".", "")) for r in rows
    ]
    assert [r.line for r in parsed.rows] == list(range(2, len(rows) + 2))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(lambda t: (HEADER + "\n" + t).encode()))
def test_property_any_bytes_are_either_rows_or_a_french_refusal(data: bytes) -> None:
    outcome: ParsedImport | ImportRejected
    try:
        outcome = parse_csv(data, regie_codes=REGIES)
    except ImportRejected as error:
        outcome = error
    if isinstance(outcome, ImportRejected):
        assert outcome.problems
        assert all(p.message and p.code for p in outcome.problems)
    else:
        assert outcome.rows


@given(cents=st.integers(min_value=0, max_value=10**10))
def test_property_amount_in_euros_round_trips(cents: int) -> None:
    assert parse_amount(f"{cents // 100},{cents % 100:02d}") == cents
    assert parse_amount(f"{cents // 100}.{cents % 100:02d}") == cents


@given(number=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}", fullmatch=True))
def test_property_derived_payfip_reference_has_only_letters_and_digits(number: str) -> None:
    assert derive_payfip_reference(number).isalnum() or derive_payfip_reference(number) == ""


def test_neutralise_formula_prefixes_an_apostrophe() -> None:
    assert neutralise_formula("=1+1") == "'=1+1"
    assert neutralise_formula("-3") == "'-3"
    assert neutralise_formula("DUPONT") == "DUPONT"


def test_the_documented_example_file_imports() -> None:
    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "factures.csv"
    parsed = parse_csv(example.read_bytes(), regie_codes=REGIES)
    assert [r.number for r in parsed.rows][:2] == ["2015-001-001078", "2016-001-000096"]
    assert parsed.debtors[1].emails == ("jean.martin@example.org", "jean.martin@travail.example.org")
    documented = (example.parent.parent / "import-format.md").read_text()
    assert ";".join(COLUMNS) in documented
