"""PayFiP's server-to-server notification (P1): the one page PayFiP's servers call, not a browser.

PayFiP sends only the operation's id (no result, no signature), maybe several times, maybe never. It is a
hint: the payments service asks PayFiP for the detail and settles. So this page accepts the id however it
comes (`idop`, `idOp`, `IDOP`…, form body or query string), forwards it with a short timeout, and always
answers 200 with an empty body, even to garbage or when payments is down: an error would only make PayFiP
retry something the reconciler covers anyway.
"""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.clients import SERVICES
from gateway.rendering import SETTINGS
from shared.plumbing.logging import get_logger

log = get_logger(__name__)
routes = web.RouteTableDef()

NOTIFICATION_PATH = "/payfip/notification"
MAX_NOTIFICATION_BYTES = 8 * 1024
_IDOP = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def find_idop(query: dict[str, str] | list[tuple[str, str]], body: bytes, content_type: str) -> str | None:
    """The operation id from the body (form-urlencoded, or JSON as a courtesy) or else from `query` (the
    query string, or fields already parsed), its field's name compared case-insensitively and trimmed; None
    when absent or not shaped like an id."""
    candidates: list[tuple[str, str]] = []
    text = body.decode("utf-8", errors="replace").strip()
    if content_type == "application/json" or text.startswith("{"):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            candidates += [(str(k), str(v)) for k, v in decoded.items() if isinstance(v, str)]
    elif text:
        candidates += parse_qsl(text, keep_blank_values=False)
    candidates += list(query.items()) if isinstance(query, dict) else list(query)
    for name, value in candidates:
        if name.strip().lower() == "idop":
            value = value.strip()
            if _IDOP.match(value):
                return value
    return None


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The body's first `limit` bytes (a read may return less than asked while more is on its way)."""
    if not request.can_read_body:
        return b""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await request.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@routes.route("POST", NOTIFICATION_PATH)
@routes.route("GET", NOTIFICATION_PATH)
async def payfip_notification(request: web.Request) -> web.Response:
    try:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            fields = [(name, value) for name, value in form.items() if isinstance(value, str)]
            idop = find_idop(fields + list(request.query.items()), b"", "")
            body = b""
        else:
            body = await _read_at_most(request, MAX_NOTIFICATION_BYTES)
            idop = find_idop(list(request.query.items()), body, request.content_type)
        if idop is None:
            log.warning("payfip_notification_without_idop", method=request.method, size=len(body))
        else:
            timeout = request.app[SETTINGS].payfip_notification_timeout_seconds
            answer = await asyncio.wait_for(
                request.app[SERVICES].payments.post("/payfip/notifications", {"idop": idop}), timeout
            )
            log.info(
                "payfip_notification_forwarded",
                idop=idop,
                known=answer.get("known") if isinstance(answer, dict) else None,
                state=answer.get("state") if isinstance(answer, dict) else None,
            )
    except asyncio.CancelledError:
        raise
    except Exception as error:  # payments down or slow: the reconciler will settle the operation
        log.warning("payfip_notification_not_forwarded", error=repr(error))
    return web.Response(status=200)
