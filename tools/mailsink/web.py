"""Pages to read what the sink received (development only), and a JSON API for scripts and tests."""

from __future__ import annotations

import html
import re

from aiohttp import web

from tools.mailsink.store import MailStore

STORE = web.AppKey("mail_store", MailStore)
_URL = re.compile(r"https?://[^\s<>\"]+")

_PAGE = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem;color:#161616}}
table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.4rem;border-bottom:1px solid #ddd}}
pre{{white-space:pre-wrap;background:#f6f6f6;padding:1rem}}iframe{{width:100%;height:32rem;border:1px solid #ddd}}
a{{color:#000091}}</style></head><body>{body}</body></html>"""


def _linkify(text: str) -> str:
    escaped = html.escape(text)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


async def index(request: web.Request) -> web.Response:
    store = request.app[STORE]
    rows = "".join(
        f"<tr><td>{m.number}</td><td>{m.received_at:%H:%M:%S}</td><td>{html.escape(', '.join(m.rcpt_to))}</td>"
        f'<td><a href="/messages/{m.number}">{html.escape(m.subject)}</a></td></tr>'
        for m in reversed(store.messages)
    )
    body = (
        "<h1>Boîte de réception de développement</h1>"
        f"<p>{len(store.messages)} message(s) reçu(s). Les liens des messages ouvrent le portail.</p>"
        "<table><thead><tr><th>N°</th><th>Heure</th><th>À</th><th>Objet</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return web.Response(text=_PAGE.format(title="Messages", body=body), content_type="text/html")


async def message(request: web.Request) -> web.Response:
    store = request.app[STORE]
    number = int(request.match_info["number"])
    found = next((m for m in store.messages if m.number == number), None)
    if found is None:
        raise web.HTTPNotFound()
    body = (
        '<p><a href="/">← Tous les messages</a></p>'
        f"<h1>{html.escape(found.subject)}</h1>"
        f"<p>De : {html.escape(found.mail_from)}<br>À : {html.escape(', '.join(found.rcpt_to))}</p>"
        f"<h2>Texte</h2><pre>{_linkify(found.part('plain'))}</pre>"
        f'<h2>HTML</h2><iframe sandbox="allow-popups allow-popups-to-escape-sandbox" '
        f'title="Version HTML du message" srcdoc="{html.escape(found.part("html"))}"></iframe>'
    )
    return web.Response(
        text=_PAGE.format(title=html.escape(found.subject), body=body), content_type="text/html"
    )


async def api_messages(request: web.Request) -> web.Response:
    store = request.app[STORE]
    to = request.query.get("to")
    messages = store.to(to) if to else store.messages
    return web.json_response({"messages": [m.summary() for m in messages]})


async def api_clear(request: web.Request) -> web.Response:
    request.app[STORE].clear()
    return web.json_response({"messages": []})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(store: MailStore) -> web.Application:
    app = web.Application()
    app[STORE] = store
    app.router.add_get("/", index)
    app.router.add_get("/messages/{number:\\d+}", message)
    app.router.add_get("/api/messages", api_messages)
    app.router.add_delete("/api/messages", api_clear)
    app.router.add_get("/healthz", healthz)
    return app
