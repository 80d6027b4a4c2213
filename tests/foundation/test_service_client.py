"""ServiceClient against a small in-process service: what a caller learns from each kind of answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from shared.plumbing.http_client import ServiceClient, ServiceError, ServiceUnavailable


async def _error(request: web.Request) -> web.Response:
    status = int(request.match_info["status"])
    body = {"error": {"code": "payfip_unavailable", "message": "PayFiP ne répond pas.", "details": None}}
    return web.json_response(body, status=status)


async def _bare(request: web.Request) -> web.Response:
    return web.Response(status=502, text="<html>Bad gateway</html>")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(0.3)
    return web.json_response({"ok": True})


@pytest.fixture
async def client() -> AsyncIterator[ServiceClient]:
    app = web.Application()
    app.router.add_post("/error/{status}", _error)
    app.router.add_post("/bare", _bare)
    app.router.add_post("/slow", _slow)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield ServiceClient(
            session, service="payments", base_url=str(server.make_url("")), timeout_seconds=0.1
        )
    await server.close()


async def test_a_4xx_is_a_service_error_with_the_callees_code_and_message(client: ServiceClient) -> None:
    with pytest.raises(ServiceError) as refused:
        await client.post("/error/409")
    assert (refused.value.status, refused.value.code) == (409, "payfip_unavailable")
    assert refused.value.message == "PayFiP ne répond pas."


async def test_a_5xx_with_an_error_body_keeps_its_code_and_french_message(client: ServiceClient) -> None:
    with pytest.raises(ServiceUnavailable) as failed:
        await client.post("/error/503")
    assert (failed.value.status, failed.value.code) == (503, "payfip_unavailable")
    assert failed.value.message == "PayFiP ne répond pas."


async def test_a_5xx_without_an_error_body_says_nothing_more(client: ServiceClient) -> None:
    with pytest.raises(ServiceUnavailable) as failed:
        await client.post("/bare")
    assert (failed.value.code, failed.value.message, failed.value.reason) == (None, None, "HTTP 502")


async def test_a_call_may_wait_longer_than_the_clients_timeout(client: ServiceClient) -> None:
    with pytest.raises(ServiceUnavailable):
        await client.post("/slow")
    assert await client.post("/slow", timeout_seconds=5) == {"ok": True}
