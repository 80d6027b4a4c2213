"""SIGTERM under load: a process stops taking requests and messages, finishes what it holds (commits,
acknowledges, publishes what it committed), exits 0 within its budget, and once restarted nothing was
lost and nothing applied twice.

These tests run their own suite (own databases, queues and exchange) so that stopping a process does not
disturb the session's shared suite.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from shared.contracts.events import DebtorUpserted
from tests.operations.support import (
    count,
    eventually,
    log_events,
    publish_events,
    small_pools,
    upsert_debtors,
)
from tests.support.infra import Infra
from tests.support.resident import Resident, csrf_of
from tests.support.suite import Suite, TownHandle, start_suite, stop_suite
from tools.processes import ManagedProcess, ProcessSpec, free_port

# Each process's budget; the test allows a few seconds more for the interpreter to start and exit.
BUDGET_SECONDS = 10.0


@pytest.fixture(scope="module")
async def own_suite(infra: Infra) -> AsyncIterator[Suite]:
    budget = {
        name: {f"{name.upper()}_SHUTDOWN_TIMEOUT_SECONDS": str(BUDGET_SECONDS)}
        for name in ("auth", "invoices", "payments", "notifier", "gateway")
    }
    suite = await start_suite(infra, name="shutdown", extra_env=small_pools(**budget))
    yield suite
    await stop_suite(suite)


async def _sigterm(process: ManagedProcess) -> tuple[int | None, float]:
    """SIGTERM and wait; SIGKILL (and a non-zero code) only if the budget was badly overrun."""
    started = time.monotonic()
    code = await process.stop(timeout=BUDGET_SECONDS + 10)
    return code, time.monotonic() - started


async def test_auth_stopped_while_debtor_events_stream_in_applies_each_of_them_once(own_suite: Suite) -> None:
    suite = own_suite
    town = await suite.create_town()
    auth = suite.processes["auth"]
    # A backlog in auth's queue (so that messages are in hand when the signal comes), and the billing
    # office declaring debtors through the invoices API all along, restart included.
    burst = [
        DebtorUpserted(
            town_id=town.town_id,
            debtor_id=uuid.uuid4(),
            reference=f"B{n:04d}",
            name="DEBITEUR EN MASSE",
            emails=[f"b{n:04d}@{town.host}"],
        )
        for n in range(1500)
    ]
    burst_ids = await publish_events(suite, list(burst), producer="invoices")
    load = asyncio.create_task(upsert_debtors(suite, town, [f"S{n:04d}" for n in range(300)], concurrency=8))

    async def auth_is_busy() -> bool:
        return await _debtor_events_in_inbox(suite) >= 200

    await eventually(auth_is_busy, what="auth handling the debtor events")
    code, elapsed = await _sigterm(auth)
    assert code == 0, f"auth exited with {code}:\n{auth.tail()}"
    assert elapsed < BUDGET_SECONDS + 5, f"auth took {elapsed:.1f}s to stop"
    [cancelled] = log_events(auth.log_path, "consumer_cancelled")
    in_hand = cancelled["in_flight"]
    assert in_hand > 0, "the signal should find messages in hand (the queue had a backlog)"
    assert log_events(auth.log_path, "consumer_stopped"), "the consumer was not stopped in order"
    assert log_events(auth.log_path, "process_stopped"), "the process did not reach its end"
    applied_before_restart = await _debtor_events_in_inbox(suite)
    assert applied_before_restart < len(burst), "auth should have been stopped in the middle"

    await auth.start()
    await auth.wait_ready()
    api_emails = await load

    produced = len(burst) + await count(
        suite, "invoices", "SELECT count(*) FROM outbox WHERE event_type = 'invoices.debtor_upserted'"
    )

    async def all_applied() -> bool:
        return await _debtor_events_in_inbox(suite) == produced

    await eventually(all_applied, timeout=90, what="auth applied every debtor event after its restart")
    conn = await suite.db("auth")
    try:
        rows = await conn.fetch("SELECT email FROM known_emails WHERE town_id = $1", town.town_id)
        recorded = {str(r["event_id"]) for r in await conn.fetch("SELECT event_id FROM inbox")}
    finally:
        await conn.close()
    expected = sorted([*api_emails, *(e for d in burst for e in d.emails)])
    assert sorted(r["email"] for r in rows) == expected
    assert set(burst_ids) <= recorded
    # The handler ran once per event across both lives of the process (its log says so after each commit).
    handled = [
        r["event_id"]
        for r in log_events(auth.log_path, "event_consumed")
        if r.get("outcome") == "handled" and r.get("event_type") == "invoices.debtor_upserted"
    ]
    repeated = [event for event, times in Counter(handled).items() if times > 1]
    assert not repeated, f"events applied twice: {repeated[:5]}"
    assert len(handled) == produced
    print(
        f"\nauth: SIGTERM with {in_hand} message(s) in hand after {applied_before_restart} applied;"
        f" exited 0 in {elapsed:.2f}s; {produced} events applied once each after the restart"
    )


async def _debtor_events_in_inbox(suite: Suite) -> int:
    return await count(
        suite, "auth", "SELECT count(*) FROM inbox WHERE event_type = 'invoices.debtor_upserted'"
    )


async def test_notifier_stopped_while_emails_are_requested_sends_each_of_them_once(own_suite: Suite) -> None:
    suite = own_suite
    town = await suite.create_town()
    notifier = suite.processes["notifier"]
    addresses = [f"resident{n:03d}.{secrets.token_hex(2)}@{town.host}" for n in range(60)]
    # A slow mail server: each sender is in the middle of an SMTP conversation when the signal comes.
    suite.smtp.delay_seconds = 0.15
    for start in range(0, len(addresses), 10):
        await suite.call(
            "PUT",
            "invoices",
            f"/office/debtors/N{start:03d}",
            json={"name": "FOYER", "emails": addresses[start : start + 10]},
            headers=town.office_headers,
            expect=200,
        )

    async def auth_knows_them() -> bool:
        known = await count(
            suite, "auth", "SELECT count(*) FROM known_emails WHERE town_id = $1", town.town_id
        )
        return known == len(addresses)

    await eventually(auth_knows_them, what="auth learnt every address")

    async def request_activations() -> None:
        gate = asyncio.Semaphore(6)

        async def one(address: str) -> None:
            async with gate:
                resident = Resident(suite, town, address)
                try:
                    answer = await resident.request_activation()
                    assert answer.status == 303, answer.text[:300]
                finally:
                    await resident.close()

        await asyncio.gather(*(one(a) for a in addresses))

    load = asyncio.create_task(request_activations())

    async def some_sent() -> bool:
        return sum(1 for a in addresses if suite.mail.to(a)) >= 15

    await eventually(some_sent, what="the first e-mails went out")
    code, elapsed = await _sigterm(notifier)
    suite.smtp.delay_seconds = 0.0
    assert code == 0, f"notifier exited with {code}:\n{notifier.tail()}"
    assert elapsed < BUDGET_SECONDS + 5, f"notifier took {elapsed:.1f}s to stop"
    sent_before_restart = sum(len(suite.mail.to(a)) for a in addresses)
    [began] = log_events(notifier.log_path, "shutdown_started")
    finished_after_signal = [
        r for r in log_events(notifier.log_path, "email_sent") if r["timestamp"] > began["timestamp"]
    ]
    assert finished_after_signal, "the e-mails in hand at the signal were finished, not dropped"
    left_sending = await count(suite, "notifier", "SELECT count(*) FROM emails WHERE state = 'sending'")
    assert left_sending == 0, "an e-mail was left half-sent by the stop"

    await notifier.start()
    await notifier.wait_ready()
    await load

    async def every_address_has_its_mail() -> bool:
        return all(suite.mail.to(a) for a in addresses)

    await eventually(every_address_has_its_mail, timeout=60, what="every requested e-mail arrived")
    await asyncio.sleep(1.0)  # a stray second copy would show up now
    per_address = {a: len(suite.mail.to(a)) for a in addresses}
    assert set(per_address.values()) == {1}, {a: n for a, n in per_address.items() if n != 1}
    ids = [m.message_id for a in addresses for m in suite.mail.to(a)]
    assert len(set(ids)) == len(addresses)
    states = await count(
        suite,
        "notifier",
        "SELECT count(*) FROM emails WHERE town_id = $1 AND state <> 'sent'",
        town.town_id,
    )
    assert states == 0
    print(
        f"\nnotifier: SIGTERM after {sent_before_restart} e-mails, {len(finished_after_signal)} finished"
        f" after the signal; exited 0 in {elapsed:.2f}s;"
        f" {len(addresses)} e-mails, each arrived once"
    )


class GatedProxy:
    """An HTTP hop between the gateway and auth that holds activation requests until released, so the
    test knows for certain that the gateway is in the middle of answering them."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.held = 0
        self.release = asyncio.Event()
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        if request.path.endswith("/activation-requests"):
            self.held += 1
            await self.release.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._http.request(
            request.method, self.target + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
            return web.Response(
                body=body, status=answer.status, content_type=answer.content_type, charset=answer.charset
            )

    async def stop(self) -> None:
        self.release.set()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()


async def test_gateway_stopped_while_answering_requests_completes_every_one_it_accepted(
    own_suite: Suite,
) -> None:
    suite = own_suite
    town = await suite.create_town()
    proxy = GatedProxy(suite.url("auth"))
    await proxy.start()
    base = suite.processes["gateway"].spec
    port = free_port()
    gateway = ManagedProcess(
        ProcessSpec(
            "gateway-sigterm",
            "gateway",
            port,
            base.env | {"GATEWAY_PORT": str(port), "GATEWAY_AUTH_URL": f"http://127.0.0.1:{proxy.port}"},
        ),
        suite.processes.log_dir,
    )
    residents: list[Resident] = []
    try:
        await gateway.start()
        await gateway.wait_ready()
        town_here = TownHandle(
            town.slug, town.host, town.town_id, f"http://{town.host}:{port}", town.api_key, town.data
        )
        residents = [Resident(suite, town_here, f"r{n}@{town.host}") for n in range(20)]
        forms = [await r.get("/activer") for r in residents]
        posts = [
            asyncio.create_task(r.post("/activer", {"csrf_token": csrf_of(f.text), "email": r.email}))
            for r, f in zip(residents, forms, strict=True)
        ]

        async def all_in_flight() -> bool:
            return proxy.held == len(residents)

        await eventually(all_in_flight, what="the gateway is answering every request")
        assert gateway.process is not None
        stopping = asyncio.create_task(_sigterm(gateway))
        await asyncio.sleep(0.5)
        with pytest.raises(aiohttp.ClientConnectorError):  # accepted requests only: the door is closed
            async with aiohttp.ClientSession() as http:
                await http.get(f"http://127.0.0.1:{port}/healthz")
        assert gateway.running, "the gateway must wait for the requests it holds"

        proxy.release.set()
        pages = await asyncio.gather(*posts)
        assert [p.status for p in pages] == [303] * len(residents), [p.text[:200] for p in pages]
        assert {p.location for p in pages} == {"/activer/envoye"}
        code, elapsed = await stopping
        assert code == 0, f"the gateway exited with {code}:\n{gateway.tail()}"
        assert elapsed < BUDGET_SECONDS + 5
        print(f"\ngateway: SIGTERM with {len(residents)} requests in flight, all answered; exited 0")
    finally:
        for resident in residents:
            await resident.close()
        await gateway.stop(timeout=5)
        await proxy.stop()
