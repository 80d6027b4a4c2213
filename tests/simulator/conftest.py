"""Fixtures for the PayFiP simulator's tests.

The simulator runs in-process behind a real HTTP server; a little aiohttp server receives its notifications.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.simulator import soap_messages
from tools.payfip_simulator.app import create_app
from tools.payfip_simulator.settings import SimulatorSettings

IDOP_PATTERN = re.compile(r"<idOp>([^<]+)</idOp>")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until(condition: Any, within_seconds: float = 5.0, interval: float = 0.02) -> None:
    """Poll an async condition until it is true; fail the test after `within_seconds`."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {within_seconds} s")
        await asyncio.sleep(interval)


@dataclass
class SoapAnswer:
    status: int
    text: str
    content_type: str


class Simulator:
    """The simulator under test, reached over HTTP."""

    def __init__(self, client: TestClient[web.Request, web.Application], base_url: str) -> None:
        self.http = client
        self.base_url = base_url

    async def soap(self, xml: str, headers: dict[str, str] | None = None) -> SoapAnswer:
        response = await self.http.post(
            "/tpa/services/securite", data=xml.encode(), headers=headers or soap_messages.SOAP_HEADERS
        )
        return SoapAnswer(response.status, await response.text(), response.content_type)

    async def create_payment(self, **overrides: str | None) -> str:
        answer = await self.soap(soap_messages.creer_paiement(**overrides))
        assert answer.status == 200, answer.text
        found = IDOP_PATTERN.search(answer.text)
        assert found is not None, answer.text
        return found.group(1)

    async def control(self, method: str, path: str, body: Any = None, expected_status: int = 200) -> Any:
        response = await self.http.request(method, f"/_control{path}", json=body)
        payload = await response.json()
        assert response.status == expected_status, payload
        return payload

    async def force_result(self, idop: str, resultrans: str, notify: bool = True) -> Any:
        return await self.control(
            "POST", f"/operations/{idop}/result", {"resultrans": resultrans, "notify": notify}
        )

    async def advance_clock(self, seconds: float) -> Any:
        return await self.control("POST", "/clock", {"advance_seconds": seconds})

    async def operation(self, idop: str) -> Any:
        return await self.control("GET", f"/operations/{idop}")

    async def open_page(self, idop: str) -> aiohttp.ClientResponse:
        return await self.http.get("/tpa/paiementws.web", params={"idop": idop})

    async def click(self, idop: str, choice: str) -> aiohttp.ClientResponse:
        return await self.http.post(
            "/tpa/paiementws.web", data={"idop": idop, "choix": choice}, allow_redirects=False
        )


def make_settings(port: int, **overrides: Any) -> SimulatorSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "notification_timeout_seconds": 2.0,
        "fault_timeout_seconds": 0.6,
    } | overrides
    return SimulatorSettings(**values)


@pytest.fixture
def simulator_settings() -> SimulatorSettings:
    return make_settings(free_port())


@pytest.fixture
async def simulator(simulator_settings: SimulatorSettings) -> AsyncIterator[Simulator]:
    server = TestServer(create_app(simulator_settings), host="127.0.0.1", port=simulator_settings.port)
    async with TestClient(server) as client:
        yield Simulator(client, simulator_settings.public_url)


@dataclass
class ReceivedNotification:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    content_type: str


@dataclass
class NotificationReceiver:
    """A stand-in for the portal's notification endpoint: records every call and answers `status`."""

    url: str = ""
    status: int = 200
    received: list[ReceivedNotification] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.received.append(
            ReceivedNotification(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                form={key: str(value) for key, value in form.items()},
                content_type=request.content_type,
            )
        )
        return web.Response(status=self.status)

    async def wait_for(self, count: int, within_seconds: float = 5.0) -> list[ReceivedNotification]:
        async def enough() -> bool:
            return len(self.received) >= count

        await wait_until(enough, within_seconds)
        return self.received

    def ids(self) -> list[str]:
        """The notified ids, whatever field or place carried them."""
        return [
            value
            for notification in self.received
            for source in (notification.form, notification.query)
            for key, value in source.items()
            if key.lower() == "idop"
        ]


@pytest.fixture
async def receiver() -> AsyncIterator[NotificationReceiver]:
    notifications = NotificationReceiver()
    app = web.Application()
    app.router.add_post("/payfip/notification", notifications.handle)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    notifications.url = str(server.make_url("/payfip/notification"))
    yield notifications
    await server.close()
