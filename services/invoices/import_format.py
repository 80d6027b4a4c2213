"""The import format of invoices (O2): CSV, JSON rows and zip files checked row by row. Pure: no I/O.

The format is documented for billing offices in docs/import-format.md; this module is its only
implementation. Everything a file says is checked before anything is written: a file with one bad row
imports nothing, and the answer lists every problem found (up to `MAX_PROBLEMS`), each with its line,
its column, a stable code and a French message.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePosixPath
from typing import Any

from shared.contracts.values import InvalidEmail, normalise_email

COLUMNS: tuple[str, ...] = (
    "number",
    "issued_on",
    "due_on",
    "amount",
    "object",
    "regie",
    "debtor_reference",
    "debtor_name",
    "debtor_emails",
    "payfip_reference",
    "payfip_year",
)
REQUIRED_COLUMNS: frozenset[str] = frozenset(
    {"number", "issued_on", "amount", "object", "regie", "debtor_reference", "debtor_name"}
)
# JSON rows may give the amount as integer cents instead of a text in euros.
JSON_ONLY_FIELDS: frozenset[str] = frozenset({"amount_cents"})

MAX_PROBLEMS = 10_000  # beyond this the answer says how many more there were
MAX_EMAILS_PER_DEBTOR = 10
MAX_AMOUNT_CENTS = 100_000_000_00  # 100 million euros: beyond, it is a typing error, not an invoice
NUMBER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
PAYFIP_REFERENCE_PATTERN = re.compile(r"^[A-Za-z0-9]{6,30}$")
FIELD_MAX_LENGTH = {
    "number": 40,
    "object": 200,
    "regie": 32,
    "debtor_reference": 64,
    "debtor_name": 200,
    "debtor_emails": 2000,
    "payfip_reference": 30,
}
# A cell beginning with one of these is a formula to a spreadsheet (CSV injection, OWASP): refused.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Line breaks and tabs included: no cell of an invoice spans lines, and a tab can start a formula.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_AMOUNT = re.compile(r"^(\d{1,3}(?:[ \u00a0\u202f]\d{3})+|\d+)(?:[.,](\d{1,2}))?$")
_DATE_FR = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_EMAIL_SEPARATORS = re.compile(r"[\s,;|]+")
# Well-formed UTF-8 multi-byte sequences: a file that has some of them AND invalid bytes mixes encodings.
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")

FIELD_LABELS = {
    "number": "numéro",
    "issued_on": "date",
    "due_on": "échéance",
    "amount": "montant",
    "amount_cents": "montant",
    "object": "objet",
    "regie": "régie",
    "debtor_reference": "référence du redevable",
    "debtor_name": "nom du redevable",
    "debtor_emails": "adresses de messagerie",
    "payfip_reference": "référence PayFiP",
    "payfip_year": "exercice PayFiP",
}


@dataclass(frozen=True)
class ImportLimits:
    max_rows: int = 200_000
    max_csv_bytes: int = 50 * 1024**2
    max_zip_bytes: int = 64 * 1024**2
    max_pdf_bytes: int = 5 * 1024**2
    max_zip_entries: int = 210_000


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong in a file. `line` is the CSV line (the header is line 1) or, for JSON, the
    position of the row in `invoices` (from 1); 0 means the file as a whole."""

    line: int
    field: str | None
    code: str
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "code": self.code, "message": self.message}


class ImportRejected(Exception):
    """The file cannot be imported; nothing was written."""

    def __init__(self, problems: Sequence[RowProblem], *, total: int | None = None) -> None:
        self.problems = list(problems)[:MAX_PROBLEMS]
        self.total = total if total is not None else len(problems)
        super().__init__(self.summary)

    @property
    def summary(self) -> str:
        lines = sorted({p.line for p in self.problems if p.line > 0})
        if not lines and len(self.problems) == 1:
            return f"{self.problems[0].message} Rien n'a été importé."
        if not lines:
            return f"{_count(self.total, 'erreur', 'erreurs')} : rien n'a été importé."
        shown = (
            "" if self.total <= len(self.problems) else f" (les {len(self.problems)} premières sont listées)"
        )
        return (
            f"{_count(self.total, 'erreur', 'erreurs')} sur {_count(len(lines), 'ligne', 'lignes')}"
            f"{shown} : rien n'a été importé. Corrigez le fichier et envoyez-le de nouveau."
        )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


@dataclass(frozen=True)
class ImportRow:
    line: int
    number: str
    issued_on: date
    due_on: date | None
    amount_cents: int
    object: str
    regie_code: str
    debtor_reference: str
    debtor_name: str
    debtor_emails: tuple[str, ...]
    payfip_reference: str
    payfip_year: int


@dataclass(frozen=True)
class ImportDebtor:
    reference: str
    name: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class ParsedImport:
    rows: tuple[ImportRow, ...]
    encoding: str
    warnings: tuple[str, ...] = ()
    pdfs: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def debtors(self) -> list[ImportDebtor]:
        """Each debtor once (the rows agree on their data: checked while parsing)."""
        seen: dict[str, ImportDebtor] = {}
        for row in self.rows:
            if row.debtor_reference not in seen:
                seen[row.debtor_reference] = ImportDebtor(
                    row.debtor_reference, row.debtor_name, row.debtor_emails
                )
        return list(seen.values())


# --- values ------------------------------------------------------------------------------------------


class _Bad(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_amount(text: str) -> int:
    """`25`, `25,5`, `25,50`, `25.50`, `1 234,56` (euros) → cents. Negative, 3 decimals, `1.234,56`,
    letters or a currency sign are refused: an ambiguous amount must never be guessed."""
    cleaned = text.strip()
    if cleaned.endswith("€"):
        cleaned = cleaned[:-1].rstrip()
    match = _AMOUNT.match(cleaned)
    if not match:
        if cleaned.startswith("-"):
            raise _Bad(
                "invalid_amount", f"Montant négatif « {text} » : une facture ne peut pas être négative."
            )
        raise _Bad(
            "invalid_amount",
            f"Montant invalide « {text} » : attendu un montant en euros comme 25,00 ou 25.00"
            " (deux décimales au plus, sans séparateur de milliers autre qu'une espace).",
        )
    euros = int(re.sub(r"\D", "", match.group(1)))
    cents = int((match.group(2) or "0").ljust(2, "0"))
    total = euros * 100 + cents
    if total > MAX_AMOUNT_CENTS:
        raise _Bad("amount_too_large", f"Montant trop grand « {text} ».")
    return total


def parse_date(text: str) -> date:
    """`02/09/2015` (day first, as in France) or `2015-09-02`."""
    cleaned = text.strip()
    if m := _DATE_FR.match(cleaned):
        day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _DATE_ISO.match(cleaned):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        raise _Bad(
            "invalid_date", f"Date invalide « {text} » : attendu JJ/MM/AAAA (02/09/2015) ou AAAA-MM-JJ."
        )
    try:
        value = date(year, month, day)
    except ValueError:
        raise _Bad("invalid_date", f"Date impossible « {text} ».") from None
    if not 2000 <= value.year <= 2100:
        raise _Bad("invalid_date", f"Date hors des années 2000 à 2100 « {text} ».")
    return value


def derive_payfip_reference(number: str) -> str:
    """PayFiP's refdet allows only letters and digits: `2015-001-001078` → `2015001001078`."""
    return re.sub(r"[^A-Za-z0-9]", "", number)


def is_formula(text: str) -> bool:
    return text.startswith(FORMULA_PREFIXES)


def neutralise_formula(text: str) -> str:
    """For cells this service writes (exports): a leading apostrophe makes a spreadsheet show text."""
    return "'" + text if is_formula(text) else text


def _text(value: object, field_name: str, *, required: bool, free_text: bool = True) -> str:
    """A cell's text, stripped. `free_text` cells are refused when they start like a formula; amounts,
    dates and years are not free text: their own strict parsing refuses anything else."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        if field_name == "amount":
            raise _Bad(
                "invalid_amount",
                'amount doit être un texte en euros ("25,50") ; en JSON, un nombre se donne en centimes'
                " dans amount_cents (2550).",
            )
        raise _Bad("invalid_type", f"La colonne {FIELD_LABELS[field_name]} doit être du texte.")
    if _CONTROL.search(value):
        raise _Bad("invalid_characters", f"Caractère de contrôle dans la colonne {FIELD_LABELS[field_name]}.")
    if free_text and is_formula(value.lstrip(" ")) and value.strip():
        raise _Bad(
            "formula_refused",
            f"La colonne {FIELD_LABELS[field_name]} commence par « {value.lstrip(' ')[0]} » : les formules"
            " de tableur sont refusées (retirez ce caractère ou écrivez le texte autrement).",
        )
    value = value.strip()
    if required and not value:
        raise _Bad("required", f"La colonne {FIELD_LABELS[field_name]} est obligatoire.")
    limit = FIELD_MAX_LENGTH.get(field_name)
    if limit is not None and len(value) > limit:
        raise _Bad(
            "too_long",
            f"La colonne {FIELD_LABELS[field_name]} dépasse {limit} caractères ({len(value)}).",
        )
    return value


def _emails(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise _Bad("invalid_type", "Les adresses de messagerie doivent être du texte.")
        raw_items: list[str] = [v for v in value if v.strip()]
        for item in raw_items:
            _text(item, "debtor_emails", required=False)
    else:
        text = _text(value, "debtor_emails", required=False)
        raw_items = [item for item in _EMAIL_SEPARATORS.split(text) if item]
    emails: set[str] = set()
    for raw in raw_items:
        try:
            emails.add(normalise_email(raw))
        except InvalidEmail:
            raise _Bad("invalid_email", f"Adresse de messagerie invalide « {raw.strip()} ».") from None
    if len(emails) > MAX_EMAILS_PER_DEBTOR:
        raise _Bad(
            "too_many_emails", f"Plus de {MAX_EMAILS_PER_DEBTOR} adresses de messagerie pour un redevable."
        )
    return tuple(sorted(emails))


# --- rows --------------------------------------------------------------------------------------------


class _RowChecker:
    """Checks rows one by one and remembers what must agree across rows (numbers, debtors)."""

    def __init__(self, regie_codes: Iterable[str]) -> None:
        self.regie_codes = frozenset(regie_codes)
        self.first_line_of_number: dict[str, int] = {}
        self.debtors: dict[str, tuple[int, str, tuple[str, ...]]] = {}
        self.rows: list[ImportRow] = []
        self.problems: list[RowProblem] = []
        self.problem_count = 0

    def _problem(self, line: int, field_name: str | None, code: str, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(RowProblem(line, field_name, code, message))

    def check(self, line: int, cells: Mapping[str, object]) -> None:
        before = self.problem_count
        values: dict[str, Any] = {}

        def take(name: str, parse: Any) -> None:
            try:
                values[name] = parse()
            except _Bad as bad:
                self._problem(line, name, bad.code, bad.message)

        take("number", lambda: self._number(cells.get("number")))
        take(
            "issued_on",
            lambda: parse_date(_text(cells.get("issued_on"), "issued_on", required=True, free_text=False)),
        )
        take("due_on", lambda: self._optional_date(cells.get("due_on")))
        if "amount_cents" in cells and cells.get("amount_cents") is not None:
            take("amount_cents", lambda: self._cents(cells.get("amount_cents")))
        else:
            take(
                "amount",
                lambda: parse_amount(_text(cells.get("amount"), "amount", required=True, free_text=False)),
            )
        take("object", lambda: _text(cells.get("object"), "object", required=True))
        take("regie", lambda: self._regie(cells.get("regie")))
        take(
            "debtor_reference",
            lambda: _text(cells.get("debtor_reference"), "debtor_reference", required=True),
        )
        take("debtor_name", lambda: _text(cells.get("debtor_name"), "debtor_name", required=True))
        take("debtor_emails", lambda: _emails(cells.get("debtor_emails")))
        take(
            "payfip_reference",
            lambda: _text(cells.get("payfip_reference"), "payfip_reference", required=False),
        )
        take("payfip_year", lambda: self._year(cells.get("payfip_year")))

        issued_on: date | None = values.get("issued_on")
        due_on: date | None = values.get("due_on")
        if issued_on and due_on and due_on < issued_on:
            self._problem(
                line,
                "due_on",
                "due_before_issue",
                f"L'échéance ({due_on:%d/%m/%Y}) est antérieure à la date de la facture ({issued_on:%d/%m/%Y}).",
            )
        number: str | None = values.get("number")
        if number is not None:
            first = self.first_line_of_number.setdefault(number, line)
            if first != line:
                self._problem(
                    line,
                    "number",
                    "duplicate_number",
                    f"Le numéro {number} figure déjà ligne {first} : chaque facture n'apparaît qu'une fois.",
                )
        payfip_reference = values.get("payfip_reference")
        if number is not None and payfip_reference is not None:
            reference = payfip_reference or derive_payfip_reference(number)
            if not PAYFIP_REFERENCE_PATTERN.match(reference):
                given = "donnée" if payfip_reference else f"tirée du numéro {number}"
                self._problem(
                    line,
                    "payfip_reference",
                    "invalid_payfip_reference",
                    f"Référence PayFiP « {reference} » ({given}) invalide : 6 à 30 lettres ou chiffres,"
                    " sans espace ni tiret.",
                )
            values["payfip_reference"] = reference
        reference_of_debtor = values.get("debtor_reference")
        if reference_of_debtor and "debtor_name" in values and "debtor_emails" in values:
            seen = self.debtors.setdefault(
                reference_of_debtor, (line, values["debtor_name"], values["debtor_emails"])
            )
            if seen[0] != line and (seen[1], seen[2]) != (values["debtor_name"], values["debtor_emails"]):
                self._problem(
                    line,
                    "debtor_reference",
                    "conflicting_debtor",
                    f"Le redevable {reference_of_debtor} a un autre nom ou d'autres adresses ligne {seen[0]} :"
                    " toutes ses lignes doivent porter les mêmes.",
                )
        if self.problem_count != before:
            return
        self.rows.append(
            ImportRow(
                line=line,
                number=values["number"],
                issued_on=values["issued_on"],
                due_on=values["due_on"],
                amount_cents=values["amount_cents"] if "amount_cents" in values else values["amount"],
                object=values["object"],
                regie_code=values["regie"],
                debtor_reference=values["debtor_reference"],
                debtor_name=values["debtor_name"],
                debtor_emails=values["debtor_emails"],
                payfip_reference=values["payfip_reference"],
                payfip_year=values["payfip_year"] or values["issued_on"].year,
            )
        )

    @staticmethod
    def _number(value: object) -> str:
        number = _text(value, "number", required=True)
        if not NUMBER_PATTERN.match(number):
            raise _Bad(
                "invalid_number",
                f"Numéro de facture invalide « {number} » : lettres, chiffres, points, tirets et soulignés,"
                " 40 caractères au plus, commençant par une lettre ou un chiffre.",
            )
        return number

    @staticmethod
    def _optional_date(value: object) -> date | None:
        text = _text(value, "due_on", required=False, free_text=False)
        return parse_date(text) if text else None

    @staticmethod
    def _cents(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("invalid_amount", "amount_cents doit être un nombre entier de centimes.")
        if value < 0:
            raise _Bad(
                "invalid_amount",
                f"Montant négatif ({value} centimes) : une facture ne peut pas être négative.",
            )
        if value > MAX_AMOUNT_CENTS:
            raise _Bad("amount_too_large", f"Montant trop grand ({value} centimes).")
        return value

    def _regie(self, value: object) -> str:
        code = _text(value, "regie", required=True)
        if code not in self.regie_codes:
            known = ", ".join(sorted(self.regie_codes)) or "aucune"
            raise _Bad("unknown_regie", f"Régie inconnue « {code} » (régies de la commune : {known}).")
        return code

    @staticmethod
    def _year(value: object) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        text = _text(value, "payfip_year", required=False, free_text=False)
        if not text:
            return None
        if not re.fullmatch(r"\d{4}", text) or not 2000 <= int(text) <= 2100:
            raise _Bad("invalid_payfip_year", f"Exercice PayFiP invalide « {text} » : une année comme 2015.")
        return int(text)

    def result(self, encoding: str, warnings: Sequence[str]) -> ParsedImport:
        if self.problem_count:
            raise ImportRejected(self.problems, total=self.problem_count)
        if not self.rows:
            raise ImportRejected([RowProblem(0, None, "no_rows", "Le fichier ne contient aucune facture.")])
        return ParsedImport(rows=tuple(self.rows), encoding=encoding, warnings=tuple(warnings))


# --- CSV ---------------------------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """Bytes → text, the encoding read, and warnings. UTF-8 (with or without BOM) is the format; a file
    that is not UTF-8 at all is read as Windows-1252 (what spreadsheets save on French Windows, a
    superset of Latin-1) and the answer says so. UTF-16 and files that mix encodings are refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise ImportRejected(
            [
                RowProblem(
                    0,
                    None,
                    "invalid_encoding",
                    "Le fichier est en UTF-16 : enregistrez-le en « CSV UTF-8 » (ou Windows-1252).",
                )
            ]
        )
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode_after_bom(data[3:]), "utf-8-sig", []
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError as error:
        if _UTF8_MULTIBYTE.search(data):
            raise ImportRejected(
                [
                    RowProblem(
                        _line_of_offset(data, error.start),
                        None,
                        "invalid_encoding",
                        "Le fichier mélange des caractères UTF-8 et d'un autre encodage (octet invalide"
                        f" à la position {error.start}) : enregistrez-le de nouveau en « CSV UTF-8 ».",
                    )
                ]
            ) from None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as error:
        raise ImportRejected(
            [
                RowProblem(
                    _line_of_offset(data, error.start),
                    None,
                    "invalid_encoding",
                    "Le fichier n'est ni en UTF-8 ni en Windows-1252 : enregistrez-le en « CSV UTF-8 ».",
                )
            ]
        ) from None
    return (
        text,
        "windows-1252",
        ["Le fichier n'est pas en UTF-8 : il a été lu comme Windows-1252 (Latin-1). Vérifiez les accents."],
    )


def _decode_after_bom(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ImportRejected(
            [
                RowProblem(
                    _line_of_offset(data, error.start),
                    None,
                    "invalid_encoding",
                    "Le fichier commence comme de l'UTF-8 (BOM) mais contient un octet invalide à la position"
                    f" {error.start} : enregistrez-le de nouveau en « CSV UTF-8 ».",
                )
            ]
        ) from None


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _delimiter(header_line: str) -> str:
    """`;` is the documented separator (French spreadsheets); `,` and tab are accepted when the header
    uses them instead."""
    for candidate in (";", ",", "\t"):
        if candidate in header_line:
            return candidate
    return ";"


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | csv.Error]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield line, error
            line = reader.line_num + 1
            continue
        yield line, cells
        line = reader.line_num + 1


def parse_csv(
    data: bytes, *, regie_codes: Iterable[str], limits: ImportLimits = ImportLimits()
) -> ParsedImport:
    if len(data) > limits.max_csv_bytes:
        raise ImportRejected(
            [
                RowProblem(
                    0,
                    None,
                    "file_too_large",
                    f"Le fichier fait {len(data) / 1024**2:.1f} Mo, plus que les {limits.max_csv_bytes // 1024**2} Mo"
                    " acceptés : découpez-le en plusieurs fichiers.",
                )
            ]
        )
    text, encoding, warnings = decode(data)
    if not text.strip():
        raise ImportRejected([RowProblem(0, None, "empty_file", "Le fichier est vide.")])
    header_line = text.split("\n", 1)[0]
    records = _records(text, _delimiter(header_line))
    first = next(records, None)
    if first is None or isinstance(first[1], csv.Error):
        raise ImportRejected([RowProblem(1, None, "invalid_header", "En-tête illisible.")])
    columns = _check_header([c.strip() for c in first[1]])
    checker = _RowChecker(regie_codes)
    count = 0
    for line, cells in records:
        if isinstance(cells, csv.Error):
            checker._problem(line, None, "invalid_csv", f"Ligne illisible en CSV ({_csv_error(cells)}).")
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # blank lines (a trailing one is common) say nothing
        count += 1
        if count > limits.max_rows:
            raise ImportRejected(
                [
                    RowProblem(
                        line,
                        None,
                        "too_many_rows",
                        f"Plus de {limits.max_rows} factures dans un fichier : découpez-le en plusieurs.",
                    )
                ]
            )
        if len(cells) != len(columns):
            checker._problem(
                line,
                None,
                "wrong_cell_count",
                f"{len(cells)} colonnes au lieu de {len(columns)} (un séparateur en trop ou en moins ?"
                " Les textes contenant « ; » doivent être entre guillemets).",
            )
            continue
        checker.check(line, dict(zip(columns, cells, strict=True)))
    return checker.result(encoding, warnings)


def _csv_error(error: csv.Error) -> str:
    text = str(error)
    if "NUL" in text:
        return "caractère nul"
    if "field larger" in text:
        return "cellule trop longue"
    if "quote" in text or "delimiter" in text:
        return "guillemets mal fermés"
    return "format invalide"


def _check_header(names: list[str]) -> list[str]:
    problems: list[RowProblem] = []
    expected = ", ".join(COLUMNS)
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        problems.append(
            RowProblem(
                1,
                None,
                "unknown_columns",
                f"En-tête : colonne(s) inconnue(s) {', '.join(repr(n) for n in unknown)}. Colonnes possibles : {expected}.",
            )
        )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(
            RowProblem(
                1, None, "duplicate_columns", f"En-tête : colonne(s) en double {', '.join(duplicates)}."
            )
        )
    missing = [c for c in COLUMNS if c in REQUIRED_COLUMNS and c not in names]
    if missing:
        problems.append(
            RowProblem(
                1,
                None,
                "missing_columns",
                f"En-tête : colonne(s) obligatoire(s) absente(s) : {', '.join(missing)}."
                f" La première ligne doit être l'en-tête documenté : {expected}.",
            )
        )
    if problems:
        raise ImportRejected(problems)
    return names


# --- JSON --------------------------------------------------------------------------------------------


def parse_json_rows(
    items: Sequence[object], *, regie_codes: Iterable[str], limits: ImportLimits = ImportLimits()
) -> ParsedImport:
    """The same rows as JSON objects (`{"invoices": [...]}`); `line` is a row's position from 1."""
    if len(items) > limits.max_rows:
        raise ImportRejected(
            [
                RowProblem(
                    0,
                    None,
                    "too_many_rows",
                    f"Plus de {limits.max_rows} factures dans un envoi : découpez-le en plusieurs.",
                )
            ]
        )
    checker = _RowChecker(regie_codes)
    allowed = set(COLUMNS) | JSON_ONLY_FIELDS
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            checker._problem(position, None, "invalid_row", "Chaque facture doit être un objet JSON.")
            continue
        unknown = sorted(set(item) - allowed)
        if unknown:
            checker._problem(position, None, "unknown_fields", f"Champ(s) inconnu(s) : {', '.join(unknown)}.")
            continue
        if item.get("amount") is not None and item.get("amount_cents") is not None:
            checker._problem(
                position,
                "amount",
                "ambiguous_amount",
                "Donnez amount (en euros) ou amount_cents, pas les deux.",
            )
            continue
        checker.check(position, item)
    return checker.result("json", [])


# --- zip and PDFs ------------------------------------------------------------------------------------


def pdf_problem(content: bytes, *, max_bytes: int) -> tuple[str, str] | None:
    """(code, French message) when `content` is not an acceptable PDF, else None."""
    if len(content) > max_bytes:
        return "pdf_too_large", f"PDF de {len(content) / 1024**2:.1f} Mo : {max_bytes // 1024**2} Mo au plus."
    if not content.startswith(b"%PDF-"):
        return "invalid_pdf", "Ce n'est pas un PDF (il doit commencer par « %PDF- »)."
    if b"%%EOF" not in content[-2048:]:
        return "invalid_pdf", "PDF incomplet (la fin du fichier « %%EOF » manque)."
    return None


def parse_zip(
    data: bytes, *, regie_codes: Iterable[str], limits: ImportLimits = ImportLimits()
) -> ParsedImport:
    """A zip holding one CSV file and PDFs named by invoice number (`2015-001-001078.pdf`)."""

    def refuse(code: str, message: str) -> ImportRejected:
        return ImportRejected([RowProblem(0, None, code, message)])

    if len(data) > limits.max_zip_bytes:
        raise refuse(
            "file_too_large",
            f"Le zip dépasse {limits.max_zip_bytes // 1024**2} Mo : envoyez les PDF en plusieurs fois"
            " ou un par un (PUT /office/invoices/{numéro}/pdf).",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise refuse("invalid_zip", "Le fichier n'est pas un zip lisible.") from None
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) > limits.max_zip_entries:
            raise refuse("too_many_files", f"Le zip contient plus de {limits.max_zip_entries} fichiers.")
        csv_entries = [e for e in entries if e.filename.lower().endswith(".csv") and not _hidden(e.filename)]
        if not csv_entries:
            raise refuse("missing_csv", "Le zip ne contient pas de fichier .csv des factures.")
        if len(csv_entries) > 1:
            raise refuse(
                "several_csv", f"Le zip contient {len(csv_entries)} fichiers .csv : un seul est attendu."
            )
        if csv_entries[0].file_size > limits.max_csv_bytes:
            raise refuse("file_too_large", "Le fichier CSV du zip est trop gros.")
        parsed_or_problem: ParsedImport | ImportRejected
        try:
            parsed_or_problem = parse_csv(
                _read_entry(archive, csv_entries[0], limits.max_csv_bytes),
                regie_codes=regie_codes,
                limits=limits,
            )
        except ImportRejected as rejected:
            parsed_or_problem = rejected
        pdfs: dict[str, bytes] = {}
        problems: list[RowProblem] = []
        numbers = (
            {row.number for row in parsed_or_problem.rows}
            if isinstance(parsed_or_problem, ParsedImport)
            else None
        )
        for entry in entries:
            name = PurePosixPath(entry.filename).name
            if entry is csv_entries[0] or _hidden(entry.filename):
                continue
            if not name.lower().endswith(".pdf"):
                problems.append(
                    RowProblem(
                        0, name, "unexpected_file", f"{name} : seuls un .csv et des .pdf sont attendus."
                    )
                )
                continue
            number = name[: -len(".pdf")]
            if number in pdfs:
                problems.append(
                    RowProblem(0, name, "duplicate_pdf", f"{name} : deux PDF pour la même facture.")
                )
                continue
            if numbers is not None and number not in numbers:
                problems.append(
                    RowProblem(
                        0, name, "pdf_without_invoice", f"{name} : aucune facture {number} dans le CSV."
                    )
                )
                continue
            if entry.file_size > limits.max_pdf_bytes:
                problems.append(
                    RowProblem(
                        0,
                        name,
                        "pdf_too_large",
                        f"{name} : PDF de plus de {limits.max_pdf_bytes // 1024**2} Mo.",
                    )
                )
                continue
            content = _read_entry(archive, entry, limits.max_pdf_bytes)
            problem = pdf_problem(content, max_bytes=limits.max_pdf_bytes)
            if problem:
                problems.append(RowProblem(0, name, problem[0], f"{name} : {problem[1]}"))
                continue
            pdfs[number] = content
    if isinstance(parsed_or_problem, ImportRejected):
        raise ImportRejected(
            parsed_or_problem.problems + problems, total=parsed_or_problem.total + len(problems)
        )
    if problems:
        raise ImportRejected(problems)
    return ParsedImport(
        rows=parsed_or_problem.rows,
        encoding=parsed_or_problem.encoding,
        warnings=parsed_or_problem.warnings,
        pdfs=pdfs,
    )


def _hidden(name: str) -> bool:
    """macOS and Windows add these to zips; they are not the office's files."""
    path = PurePosixPath(name)
    return path.name.startswith(".") or "__MACOSX" in path.parts or path.name.lower() == "thumbs.db"


def _read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int) -> bytes:
    """Read at most `limit` bytes, whatever the entry's header claims (zip bombs lie about sizes)."""
    with archive.open(entry) as stream:
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise ImportRejected(
            [RowProblem(0, entry.filename, "file_too_large", f"{entry.filename} dépasse la taille permise.")]
        )
    return content


def write_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """Write rows in the documented format (the CLI, the demo seed and the tests use it)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: row.get(name, "") for name in COLUMNS})
    return out.getvalue()
