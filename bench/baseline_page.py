"""The page benchmark's baseline (TechEmpower "Fortunes" style): a bare aiohttp + asyncpg + jinja2
handler rendering the resident's invoices table from the invoices database, with nothing else: no
town lookup, no session, no other service, no CSRF, no security headers.

`python -m bench.baseline_page --dsn … --port … --town … --account …`
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import jinja2
import uvloop
from aiohttp import web

from shared.contracts.values import format_date, format_euros

QUERY = """
SELECT i.invoice_id, i.number, i.issued_on, i.due_on, i.amount_cents, i.object, i.state,
       i.state IN ('paid_online', 'paid_elsewhere') AS paid
FROM invoices i
JOIN account_debtors l ON l.debtor_id = i.debtor_id AND l.town_id = $1
WHERE i.town_id = $1 AND l.account_id = $2
ORDER BY i.issued_on DESC, i.number DESC
LIMIT 50
"""


def create_app(dsn: str, town_id: uuid.UUID, account_id: uuid.UUID) -> web.Application:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True
    )
    env.filters["euros"] = format_euros
    env.filters["date_fr"] = format_date
    template = env.get_template("fortunes.html")
    pool_key = web.AppKey("pool", asyncpg.Pool)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        app[pool_key] = await asyncpg.create_pool(dsn, min_size=4, max_size=10)
        yield
        await app[pool_key].close()

    async def page(request: web.Request) -> web.Response:
        rows = await request.app[pool_key].fetch(QUERY, town_id, account_id)
        return web.Response(text=template.render(invoices=rows), content_type="text/html")

    app = web.Application()
    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/factures", page)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--town", type=uuid.UUID, required=True)
    parser.add_argument("--account", type=uuid.UUID, required=True)
    args = parser.parse_args()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        create_app(args.dsn, args.town, args.account),
        host="127.0.0.1",
        port=args.port,
        loop=loop,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
