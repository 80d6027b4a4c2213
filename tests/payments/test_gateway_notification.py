"""The gateway's PayFiP notification page, in process: it finds the id however PayFiP spells and sends it,
forwards it to payments, and answers 200 with an empty body whatever happens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings
from gateway.views.payfip import find_idop
from tools.processes import free_port

IDOP = "cc0cb210-1cd4-11ea-8cca-0213ad91a103"


class FakePayments:
    """Stands for the payments service: records the ids the gateway forwards."""

    def __init__(self) -> None:
        self.received: list[object] = []
        self.status = 200

    def app(self) -> web.Application:
        async def notifications(request: web.Request) -> web.Response:
            self.received.append(await request.json())
            return web.json_response({"known": True, "state": "pending"}, status=self.status)

        app = web.Application()
        app.router.add_post("/payfip/notifications", notifications)
        return app


@pytest.fixture
async def payments() -> AsyncIterator[tuple[FakePayments, str]]:
    fake = FakePayments()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


async def gateway_client(payments_url: str) -> TestClient[web.Request, web.Application]:
    settings = Settings(payments_url=payments_url, payfip_notification_timeout_seconds=1.0, log_json=False)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"data": {"idop": IDOP}},
        {"data": {"idOp": IDOP}},
        {"data": {"IDOP": IDOP}},
        {"params": {"idOp": IDOP}},
        {"params": {"idop": IDOP}, "data": {"other": "x"}},
        {"json": {"idop": IDOP}},
        {"data": aiohttp.FormData({"idOp": IDOP}, default_to_multipart=True)},
    ],
)
async def test_the_id_is_found_in_body_or_query_whatever_its_case_and_forwarded(
    payments: tuple[FakePayments, str], kwargs: dict[str, object]
) -> None:
    fake, url = payments
    client = await gateway_client(url)
    try:
        response = await client.post("/payfip/notification", **kwargs)  # type: ignore[arg-type]
        assert response.status == 200
        assert await response.read() == b""
    finally:
        await client.close()
    assert fake.received == [{"idop": IDOP}]


async def test_a_get_with_the_id_in_the_query_is_forwarded_too(payments: tuple[FakePayments, str]) -> None:
    fake, url = payments
    client = await gateway_client(url)
    try:
        response = await client.get("/payfip/notification", params={"idop": IDOP})
        assert (response.status, await response.read()) == (200, b"")
    finally:
        await client.close()
    assert fake.received == [{"idop": IDOP}]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"data": b"\x00\xff\xfe"},
        {"data": {"idop": "<script>alert(1)</script>"}},
        {"data": {"idop": "x" * 65}},
        {"data": "idop=" + "a" * 20000},
        {"json": ["idop", IDOP]},
    ],
)
async def test_garbage_is_answered_200_empty_and_forwards_nothing(
    payments: tuple[FakePayments, str], kwargs: dict[str, object]
) -> None:
    fake, url = payments
    client = await gateway_client(url)
    try:
        response = await client.post("/payfip/notification", **kwargs)  # type: ignore[arg-type]
        assert (response.status, await response.read()) == (200, b"")
    finally:
        await client.close()
    assert fake.received == []


async def test_payments_down_or_failing_still_gets_payfip_a_200(payments: tuple[FakePayments, str]) -> None:
    fake, url = payments
    fake.status = 500
    for target in (url, f"http://127.0.0.1:{free_port()}"):
        client = await gateway_client(target)
        try:
            response = await client.post("/payfip/notification", data={"idop": IDOP})
            assert (response.status, await response.read()) == (200, b"")
        finally:
            await client.close()


def test_the_body_wins_over_the_query_and_names_are_trimmed() -> None:
    assert (
        find_idop([("idop", "from-query")], b" idOp = from-body ", "application/x-www-form-urlencoded")
        == "from-body"
    )
    assert (
        find_idop([("idop", "from-query")], b"other=1", "application/x-www-form-urlencoded") == "from-query"
    )
    assert find_idop([], b"", "") is None
