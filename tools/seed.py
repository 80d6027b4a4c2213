"""Demo data, written through the services' own APIs (so every event really flows)."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.plumbing.web import INTERNAL_TOKEN_HEADER
from tools.demo_data import DEMO_DEBTORS, DEMO_INVOICES, DEMO_PAID_ELSEWHERE, DEMO_SLUG, demo_town


class SeedError(RuntimeError):
    pass


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, *, headers: dict[str, str], json: Any
) -> Any:
    async with session.request(method, url, headers=headers, json=json) as response:
        body = await response.json(content_type=None)
        if response.status >= 400:
            raise SeedError(f"{method} {url} answered {response.status}: {body}")
        return body


def demo_import() -> dict[str, Any]:
    """The demo invoices as the office's JSON import (the same columns as the CSV format)."""
    rows = []
    for invoice in DEMO_INVOICES:
        name, emails = DEMO_DEBTORS[invoice["debtor"]]
        rows.append(
            {
                "number": invoice["number"],
                "issued_on": invoice["issued_on"],
                "due_on": invoice["due_on"],
                "amount_cents": invoice["amount_cents"],
                "object": invoice["object"],
                "regie": invoice["regie"],
                "debtor_reference": invoice["debtor"],
                "debtor_name": name,
                "debtor_emails": emails,
            }
        )
    return {"invoices": rows}


async def seed_demo(invoices_url: str, internal_token: str, public_url: str) -> dict[str, Any]:
    """Create or update the demo town, issue an office API key, import its invoices (with their
    debtors) through the office's import API, and settle one invoice by another channel so that
    «Mes factures» shows a paid (yellow) row. Running it again changes nothing: the import is
    idempotent and marking an invoice paid twice is a no-op. PDFs are drawn by the portal at the first
    download."""
    admin = {INTERNAL_TOKEN_HEADER: internal_token}
    async with aiohttp.ClientSession() as session:
        town = await _call(
            session,
            "PUT",
            f"{invoices_url}/admin/towns/{DEMO_SLUG}",
            headers=admin,
            json=demo_town(public_url),
        )
        key = await _call(
            session,
            "POST",
            f"{invoices_url}/admin/towns/{DEMO_SLUG}/api-keys",
            headers=admin,
            json={"label": "demo seed"},
        )
        office = {"Authorization": f"Bearer {key['api_key']}"}
        imported = await _call(
            session, "POST", f"{invoices_url}/office/imports", headers=office, json=demo_import()
        )
        for number in DEMO_PAID_ELSEWHERE:
            await _call(
                session,
                "POST",
                f"{invoices_url}/office/invoices/{number}/paid-elsewhere",
                headers=office,
                json={"comment": "Réglée en espèces au guichet de la mairie."},
            )
    return {"town": town, "office_api_key": key["api_key"], "import": imported}


def main() -> None:
    """`python -m tools.seed --invoices-url … --public-url …` (docker-compose's one-shot seed)."""
    import argparse
    import asyncio
    import os

    parser = argparse.ArgumentParser(description="Seed «Mairie de Démonstration» through the services' APIs.")
    parser.add_argument("--invoices-url", default="http://127.0.0.1:8002")
    parser.add_argument("--public-url", default="http://demo.localhost:8000")
    args = parser.parse_args()
    token = os.environ.get("SEED_INTERNAL_TOKEN", "development-internal-token")
    seeded = asyncio.run(seed_demo(args.invoices_url, token, args.public_url))
    print(f"seeded {seeded['town']['name']}; office API key: {seeded['office_api_key']}")


if __name__ == "__main__":
    main()
