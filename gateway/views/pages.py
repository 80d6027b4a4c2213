"""Pages that belong to no resident area: the accessibility statement."""

from __future__ import annotations

from aiohttp import web

from gateway.rendering import render

routes = web.RouteTableDef()


@routes.get("/accessibilite")
async def accessibility_statement(request: web.Request) -> web.StreamResponse:
    return render(request, "accessibilite.html")
