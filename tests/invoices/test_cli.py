"""The office's command line against the real service: progress, the answer, the bad rows in French."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.invoices.helpers import csv_bytes, invoice_ids_by_number, manual_rows, unique_email
from tests.support.suite import Suite
from tools.processes import ROOT


async def run_cli(suite: Suite, *args: str, api_key: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.invoices.cli",
        "import",
        *args,
        cwd=ROOT,
        env=os.environ | {"PORTAIL_OFFICE_URL": suite.url("invoices"), "PORTAIL_OFFICE_API_KEY": api_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_cli_sends_a_file_shows_progress_and_the_counts(suite: Suite, tmp_path: Path) -> None:
    town = await suite.create_town()
    path = tmp_path / "factures.csv"
    path.write_bytes(csv_bytes(manual_rows(unique_email("m"), unique_email("j"))))
    code, output = await run_cli(suite, str(path), api_key=town.api_key)
    assert code == 0, output
    assert "Envoi : 0.0 / 0.0 Mo (100 %)" in output
    assert "Réponse du portail : 200" in output
    assert "Import réussi (6 factures lues, encodage utf-8)" in output
    assert "6 nouvelles, 0 modifiées, 0 inchangées, 0 ignorées car déjà réglées" in output
    assert len(await invoice_ids_by_number(suite, town)) == 6


async def test_cli_prints_every_bad_row_in_french_and_fails(suite: Suite, tmp_path: Path) -> None:
    town = await suite.create_town()
    rows = manual_rows(unique_email("m"), unique_email("j"))
    rows[1]["amount"] = "32,001"
    rows[5]["regie"] = "PISCINE"
    path = tmp_path / "factures.csv"
    path.write_bytes(csv_bytes(rows))
    code, output = await run_cli(suite, str(path), api_key=town.api_key)
    assert code == 1, output
    assert "Refusé (422) : 2 erreurs sur 2 lignes : rien n'a été importé." in output
    assert "  ligne 3, montant : Montant invalide « 32,001 »" in output
    assert "  ligne 7, régie : Régie inconnue « PISCINE » (régies de la commune : CENTRALE, EAU)." in output
    assert await invoice_ids_by_number(suite, town) == {}


async def test_cli_with_a_wrong_key_or_no_service(suite: Suite, tmp_path: Path) -> None:
    path = tmp_path / "factures.csv"
    path.write_bytes(csv_bytes(manual_rows(unique_email("m"), unique_email("j"))))
    code, output = await run_cli(suite, str(path), api_key="pf_wrong")
    assert code == 1
    assert "Refusé (401) : Clé d'API inconnue ou révoquée." in output
    code, output = await run_cli(suite, str(path), "--url", "http://127.0.0.1:9", api_key="pf_wrong")
    assert code == 2
    assert "Envoi impossible" in output
