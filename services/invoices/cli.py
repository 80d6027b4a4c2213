"""The billing office's command line: send an invoice file to the portal and read its answer in French.

    python -m services.invoices.cli import factures.csv --url https://portail.example.fr:8002 --api-key pf_…
    python -m services.invoices.cli import factures.zip          # a CSV and PDFs named by invoice number

The address and the key may come from PORTAIL_OFFICE_URL and PORTAIL_OFFICE_API_KEY instead (a key on
a command line is visible to other users of the machine). Exit status: 0 imported, 1 refused by the
portal, 2 could not send.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import aiohttp

CHUNK_BYTES = 256 * 1024
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
    "debtor_emails": "adresses",
    "payfip_reference": "référence PayFiP",
    "payfip_year": "exercice",
}


def media_type(path: Path, *, force_zip: bool) -> str:
    suffix = path.suffix.lower()
    if force_zip or suffix == ".zip":
        return "application/zip"
    if suffix == ".json":
        return "application/json"
    return "text/csv"


class Progress:
    """Bytes sent so far: redrawn in place on a terminal, one line per tenth otherwise (logs, CI)."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total = max(total, 1)
        self.sent = 0
        self.out = out
        self.tty = out.isatty()
        self._last_tenth = -1

    def advance(self, size: int) -> None:
        self.sent += size
        tenth = self.sent * 10 // self.total
        line = f"Envoi : {self.sent / 1024**2:.1f} / {self.total / 1024**2:.1f} Mo ({self.sent * 100 // self.total} %)"
        if self.tty:
            self.out.write("\r" + line)
            self.out.flush()
        elif tenth != self._last_tenth:
            self.out.write(line + "\n")
        self._last_tenth = tenth

    def done(self) -> None:
        if self.tty:
            self.out.write("\n")
        self.out.write("Fichier envoyé, le portail le vérifie et l'importe…\n")
        self.out.flush()


async def _chunks(path: Path, progress: Progress) -> AsyncIterator[bytes]:
    with path.open("rb") as stream:
        while chunk := await asyncio.to_thread(stream.read, CHUNK_BYTES):
            progress.advance(len(chunk))
            yield chunk
    progress.done()


def describe_success(answer: dict[str, Any]) -> list[str]:
    lines = [
        f"Import réussi ({answer['rows']} factures lues, encodage {answer['encoding']}) :",
        f"  {answer['created']} nouvelles, {answer['updated']} modifiées, {answer['unchanged']} inchangées,"
        f" {answer['skipped_paid']} ignorées car déjà réglées",
        f"  {answer['debtors_changed']} redevables créés ou modifiés, {answer['pdfs_stored']} PDF enregistrés,"
        f" {answer['alerts']} usagers prévenus par courriel",
    ]
    if answer.get("skipped_paid_numbers"):
        lines.append("  Factures réglées non modifiées : " + ", ".join(answer["skipped_paid_numbers"]))
    lines.extend(f"Attention : {warning}" for warning in answer.get("warnings", []))
    lines.append(f"Identifiant de l'import : {answer['import_id']}")
    return lines


def describe_refusal(status: int, error: dict[str, Any]) -> list[str]:
    lines = [f"Refusé ({status}) : {error.get('message', '')}"]
    details = error.get("details")
    if isinstance(details, list):
        for problem in details:
            if not isinstance(problem, dict):
                continue
            where = f"ligne {problem['line']}" if problem.get("line") else "fichier"
            field = problem.get("field")
            label = FIELD_LABELS.get(field, field) if field else None
            lines.append(f"  {where}{', ' + label if label else ''} : {problem.get('message', '')}")
    return lines


async def send_file(path: Path, size: int, *, url: str, api_key: str, force_zip: bool, out: TextIO) -> int:
    progress = Progress(size, out)
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": media_type(path, force_zip=force_zip),
        "Content-Length": str(size),
    }
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url.rstrip("/") + "/office/imports", data=_chunks(path, progress), headers=headers
            ) as response,
        ):
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        out.write(f"\nEnvoi impossible : {error}\n")
        return 2
    out.write(f"Réponse du portail : {status}\n")
    if status == 200 and isinstance(body, dict):
        out.write("\n".join(describe_success(body)) + "\n")
        return 0
    refusal = body.get("error", {}) if isinstance(body, dict) else {}
    out.write("\n".join(describe_refusal(status, refusal)) + "\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.invoices.cli",
        description="Envoie un fichier de factures au portail et affiche sa réponse.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("import", help="envoyer un fichier de factures (CSV, JSON ou zip)")
    send.add_argument("file", type=Path, help="le fichier CSV (ou .json, ou .zip avec CSV et PDF)")
    send.add_argument("--zip", action="store_true", help="le fichier est un zip, quel que soit son nom")
    send.add_argument(
        "--url", default=os.environ.get("PORTAIL_OFFICE_URL"), help="adresse du service des factures"
    )
    send.add_argument(
        "--api-key", default=os.environ.get("PORTAIL_OFFICE_API_KEY"), help="clé d'API de la commune"
    )
    args = parser.parse_args(argv)
    if not args.url or not args.api_key:
        parser.error(
            "l'adresse (--url ou PORTAIL_OFFICE_URL) et la clé (--api-key ou PORTAIL_OFFICE_API_KEY) sont requises"
        )
    if not args.file.is_file():
        parser.error(f"fichier introuvable : {args.file}")
    size = args.file.stat().st_size
    return asyncio.run(
        send_file(args.file, size, url=args.url, api_key=args.api_key, force_zip=args.zip, out=sys.stdout)
    )


if __name__ == "__main__":
    sys.exit(main())
