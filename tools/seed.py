"""Demo data, written through the services' own APIs (so every event really flows)."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.plumbing.web import INTERNAL_TOKEN_HEADER
from tools.demo_data import DEMO_DEBTORS, DEMO_SLUG, demo_town


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


async def seed_demo(invoices_url: str, internal_token: str, public_url: str) -> dict[str, Any]:
    """Create or update the demo town, issue an office API key, and upsert its debtors."""
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
        for reference, (name, emails) in DEMO_DEBTORS.items():
            await _call(
                session,
                "PUT",
                f"{invoices_url}/office/debtors/{reference}",
                headers=office,
                json={"name": name, "emails": emails},
            )
    return {"town": town, "office_api_key": key["api_key"]}


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
