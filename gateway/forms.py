"""Reading HTML forms: every field a string of bounded length, whatever the browser (or attacker) sent."""

from __future__ import annotations

from aiohttp import web


async def form_fields(request: web.Request, *names: str, max_length: int = 4096) -> dict[str, str]:
    data = await request.post()
    fields: dict[str, str] = {}
    for name in names:
        value = data.get(name, "")
        fields[name] = value[:max_length] if isinstance(value, str) else ""
    return fields


def safe_next(target: str | None, default: str) -> str:
    """Where to go after a login: a path of this site only (no open redirect to another site)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return default
