"""The payments world: the whole suite as real processes (two payments replicas, the gateway, the PayFiP
simulator), with short time windows, a stand-in for the invoices service's `payable` endpoint, and a
pass-through proxy in front of the simulator.

- `InvoicesStandIn` answers `POST /towns/{town_id}/accounts/{account_id}/payable` exactly as the contract
  the invoices engineer implements in parallel says; the real endpoint replaces it after the merge.
- `PayfipProxy` forwards everything to the simulator untouched, except that a test may rewrite fields of
  PayFiP's detail answer for one idOp (a different amount, client number or reference): the one thing the
  simulator cannot be asked to do, and what a mismatch is.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from shared.contracts import EventPayload, envelope_for
from shared.plumbing import db
from shared.plumbing.bus import OutgoingMessage, Publisher
from shared.plumbing.web import INTERNAL_TOKEN_HEADER
from tests.support.infra import Infra
from tests.support.suite import Suite, TownHandle, start_suite, stop_suite, suite_config
from tests.support.waiting import eventually
from tools.processes import free_port

# Time windows of the payments world (seconds): short enough for tests, in the protocol's proportions.
OPERATION_WINDOW = 3.0
GIVE_UP = 8.0
LOCK = 120.0
FIRST_POLL = 2.0
PAYFIP_TIMEOUT = 1.5

PAYMENTS_ENV = {
    "PAYMENTS_DB_POOL_MIN": "1",
    "PAYMENTS_DB_POOL_MAX": "5",
    "PAYMENTS_PAYFIP_TIMEOUT_SECONDS": str(PAYFIP_TIMEOUT),
    "PAYMENTS_OPERATION_WINDOW_SECONDS": str(OPERATION_WINDOW),
    "PAYMENTS_GIVE_UP_HOURS": str(GIVE_UP / 3600),
    "PAYMENTS_LOCK_HOURS": str(LOCK / 3600),
    "PAYMENTS_RECONCILE_FIRST_POLL_SECONDS": str(FIRST_POLL),
    "PAYMENTS_RECONCILE_SPACING_SECONDS": "0.5",
    "PAYMENTS_RECONCILE_MAX_SPACING_SECONDS": "1.5",
    "PAYMENTS_RECONCILE_INTERVAL_SECONDS": "0.25",
    "PAYMENTS_RECONCILE_CLAIM_SECONDS": "5",
    # Small claims, so that two replicas polling twelve attempts each get a share whatever the timing.
    "PAYMENTS_RECONCILE_BATCH_SIZE": "3",
    "PAYMENTS_STALE_CREATION_SECONDS": "6",
}
# The PostgreSQL server is shared with the default suite and other runs: this world keeps its pools small.
SMALL_POOLS = {
    service: {f"{service.upper()}_DB_POOL_MIN": "1", f"{service.upper()}_DB_POOL_MAX": "4"}
    for service in ("auth", "invoices", "notifier")
}
SIMULATOR_ENV = {"PAYFIP_SIM_FAULT_TIMEOUT_SECONDS": "4", "PAYFIP_SIM_NOTIFICATION_TIMEOUT_SECONDS": "5"}


# --- a stand-in for the invoices service's payable endpoint ----------------------------------------


class InvoicesStandIn:
    """The invoices service's `payable` contract, answered from invoices the tests declare."""

    def __init__(self, internal_token: str) -> None:
        self._token = internal_token
        self.towns: dict[uuid.UUID, TownHandle] = {}
        self.invoices: dict[tuple[uuid.UUID, uuid.UUID], dict[uuid.UUID, dict[str, Any]]] = {}
        self.available = True
        self.calls = 0
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/towns/{town_id}/accounts/{account_id}/payable", self._payable)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def add_invoice(
        self,
        town: TownHandle,
        account_id: uuid.UUID,
        *,
        regie: str = "CENTRALE",
        amount_cents: int = 2500,
        reference: str | None = None,
        payable: bool = True,
        reason: str | None = None,
    ) -> dict[str, Any]:
        self.towns[town.town_id] = town
        regie_data = next(r for r in town.data["regies"] if r["code"] == regie)
        serial = next(self._numbers)
        invoice_id = uuid.uuid4()
        invoice: dict[str, Any] = {
            "invoice_id": str(invoice_id),
            "number": f"2026-{serial:06d}",
            "amount_cents": amount_cents,
            "state": "published",
            "payfip_reference": reference or f"2026{serial:09d}",
            "payfip_year": 2026,
            "object": "Cantine de l'école – mars",
            "regie": {
                key: regie_data[key]
                for key in (
                    "regie_id",
                    "code",
                    "name",
                    "payfip_client_number",
                    "payfip_mode",
                    "online_payment_enabled",
                    "grouped_payment_allowed",
                )
            },
            "payable": payable,
            "reason": reason,
        }
        self.invoices.setdefault((town.town_id, account_id), {})[invoice_id] = invoice
        return invoice

    def change(self, invoice: dict[str, Any], **changes: Any) -> None:
        invoice.update(changes)

    async def _payable(self, request: web.Request) -> web.Response:
        self.calls += 1
        if request.headers.get(INTERNAL_TOKEN_HEADER) != self._token:
            return web.json_response({"error": {"code": "unauthorized", "message": "Jeton"}}, status=401)
        if not self.available:
            return web.json_response({"error": {"code": "internal_error", "message": "Panne"}}, status=503)
        town_id = uuid.UUID(request.match_info["town_id"])
        account_id = uuid.UUID(request.match_info["account_id"])
        body = await request.json()
        own = self.invoices.get((town_id, account_id), {})
        wanted = [uuid.UUID(raw) for raw in body["invoice_ids"]]
        if any(invoice_id not in own for invoice_id in wanted):
            return web.json_response(
                {"error": {"code": "invoice_not_found", "message": "Facture introuvable."}}, status=404
            )
        town = self.towns[town_id]
        return web.json_response(
            {
                "town": {"town_id": str(town_id), "name": town.data["name"], "public_url": town.public_url},
                "invoices": [own[invoice_id] for invoice_id in wanted],
            }
        )


# --- a pass-through proxy in front of the simulator ------------------------------------------------


class PayfipProxy:
    """Forwards every request to the simulator; `detail_overrides[idop]` rewrites fields of the detail
    answer for that idOp (what PayFiP would say if it disagreed with what we sent)."""

    def __init__(self) -> None:
        self.target = ""
        self.detail_overrides: dict[str, dict[str, str]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("content-type", "soapaction")}
        try:
            async with self._session.request(
                request.method,
                self.target + request.path_qs,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
                content_type = upstream.headers.get("Content-Type")
        except aiohttp.ClientError:
            # The simulator hung up ("unavailable"): hang up on the caller too.
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPBadGateway() from None
        found = re.search(rb"<idOp>([^<]+)</idOp>", body)
        if b"recupererDetailPaiementSecurise" in body and found:
            for name, value in self.detail_overrides.get(found.group(1).decode(), {}).items():
                payload = re.sub(
                    rf"<{name}>[^<]*</{name}>".encode(), f"<{name}>{value}</{name}>".encode(), payload
                )
        response = web.Response(status=status, body=payload)
        if content_type:
            response.headers["Content-Type"] = content_type
        return response


# --- the world the service-level tests run in ------------------------------------------------------


@dataclass
class PaymentsWorld:
    suite: Suite
    invoices: InvoicesStandIn
    proxy: PayfipProxy
    http: aiohttp.ClientSession
    # One small pool for the tests' own queries: the PostgreSQL server is shared with other test runs.
    database: asyncpg.Pool

    @property
    def simulator_url(self) -> str:
        return self.suite.url("payfip")

    async def reset(self) -> None:
        await self.sim("POST", "/reset")
        self.proxy.detail_overrides.clear()
        self.invoices.available = True

    async def town(self) -> TownHandle:
        return await self.suite.create_town()

    def account(self) -> uuid.UUID:
        return uuid.uuid4()

    async def payments(self, method: str, path: str, json_body: Any = None) -> tuple[int, Any]:
        return await self.suite.call(method, "payments", path, json=json_body)

    async def start(
        self,
        town: TownHandle,
        account: uuid.UUID,
        invoices: Iterable[dict[str, Any]],
        email: str = "marie.dupont@example.org",
    ) -> tuple[int, Any]:
        return await self.payments(
            "POST",
            f"/towns/{town.town_id}/accounts/{account}/payments",
            {"invoice_ids": [i["invoice_id"] for i in invoices], "email": email},
        )

    async def started(
        self, town: TownHandle, account: uuid.UUID, invoices: Iterable[dict[str, Any]], **kw: Any
    ) -> Any:
        status, body = await self.start(town, account, invoices, **kw)
        assert status == 201, body
        return body

    async def payment(self, town: TownHandle, account: uuid.UUID, payment_id: str) -> Any:
        status, body = await self.payments(
            "GET", f"/towns/{town.town_id}/accounts/{account}/payments/{payment_id}"
        )
        assert status == 200, body
        return body

    async def wait_for_state(
        self, town: TownHandle, account: uuid.UUID, payment_id: str, state: str, *, timeout: float = 15.0
    ) -> Any:
        async def reached() -> Any:
            payment = await self.payment(town, account, payment_id)
            return payment if payment["state"] == state else None

        return await eventually(reached, timeout=timeout, what=f"payment {payment_id} {state}")

    async def returned(self, town: TownHandle, account: uuid.UUID, idop: str) -> tuple[int, Any]:
        return await self.payments(
            "POST", f"/towns/{town.town_id}/accounts/{account}/payments/returned", {"idop": idop}
        )

    async def locks(
        self, town: TownHandle, account: uuid.UUID, invoices: Iterable[dict[str, Any]]
    ) -> list[Any]:
        status, body = await self.payments(
            "POST",
            f"/towns/{town.town_id}/accounts/{account}/locks",
            {"invoice_ids": [i["invoice_id"] for i in invoices]},
        )
        assert status == 200, body
        locks: list[Any] = body["locks"]
        return locks

    async def sim(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        async with self.http.request(method, self.simulator_url + "/_control" + path, json=body) as response:
            answer = await response.json()
            assert response.status == expect, answer
            return answer

    async def pay(self, idop: str, resultrans: str = "P", *, notify: bool = True) -> Any:
        return await self.sim(
            "POST", f"/operations/{idop}/result", {"resultrans": resultrans, "notify": notify}
        )

    async def notify(
        self, *, data: Any = None, params: dict[str, str] | None = None, method: str = "POST"
    ) -> tuple[int, bytes]:
        """Call the gateway's PayFiP notification page as PayFiP's servers do."""
        async with self.http.request(
            method, self.suite.url("gateway") + "/payfip/notification", data=data, params=params
        ) as response:
            return response.status, await response.read()

    async def publish(self, payload: EventPayload, *, producer: str = "invoices") -> None:
        """Put an event on this world's bus as its producer would (for events not produced yet)."""
        config = self.suite.config
        publisher = Publisher(config.amqp_url, config.exchange, connection_name="tests-publisher")
        await publisher.start()
        try:
            envelope = envelope_for(payload, producer=producer, correlation_id="tests-" + uuid.uuid4().hex)
            await publisher.publish(
                OutgoingMessage(
                    event_id=str(envelope.event_id),
                    event_type=envelope.type,
                    version=envelope.version,
                    routing_key=envelope.routing_key,
                    correlation_id=envelope.correlation_id,
                    body=envelope.model_dump_json().encode(),
                )
            )
        finally:
            await publisher.close()

    async def succeeded_events(self, payment_id: str) -> int:
        count: int = await self.database.fetchval(
            "SELECT count(*) FROM outbox WHERE event_type = 'payments.payment_succeeded'"
            " AND envelope->'payload'->>'payment_id' = $1",
            payment_id,
        )
        return count

    async def row(self, query: str, *args: Any) -> Any:
        return await self.database.fetchrow(query, *args)

    async def rows(self, query: str, *args: Any) -> list[Any]:
        return list(await self.database.fetch(query, *args))


@pytest.fixture(scope="session")
async def payments_world(infra: Infra) -> AsyncIterator[PaymentsWorld]:
    proxy = PayfipProxy()
    await proxy.start()
    config = suite_config(
        infra,
        namespace="pay",
        replicas={"payments": 2},
        extra_env={"payfip": SIMULATOR_ENV} | SMALL_POOLS,
    )
    invoices = InvoicesStandIn(config.internal_token)
    await invoices.start()
    proxy.target = config.url("payfip")
    config.extra_env["payments"] = (
        config.extra_env.get("payments", {})
        | PAYMENTS_ENV
        | {
            "PAYMENTS_INVOICES_URL": invoices.url,
            "PAYMENTS_PAYFIP_URL": proxy.url,
            "PAYMENTS_PAYFIP_PAGE_URL": proxy.url,
        }
    )
    suite = await start_suite(infra, config=config)
    http = aiohttp.ClientSession()
    database = await db.create_pool(config.database("payments"), min_size=1, max_size=2)
    try:
        yield PaymentsWorld(suite, invoices, proxy, http, database)
    finally:
        await database.close()
        await http.close()
        await stop_suite(suite)
        await invoices.stop()
        await proxy.stop()


@pytest.fixture
async def world(payments_world: PaymentsWorld) -> PaymentsWorld:
    """The session's payments world with the simulator, the proxy and the stand-in back to normal."""
    await payments_world.reset()
    return payments_world


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
