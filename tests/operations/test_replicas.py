"""Several replicas of a service on this machine (`scripts/dev --replicas …` runs the same plan): events
are shared between the replicas of a service (competing consumers on its one queue) and each is applied
once; HTTP calls reach every replica through the balancer on the service's usual port; e-mails are sent
by several notifiers and each arrives once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from tests.operations.support import count, eventually, scrape, small_pools, total, upsert_debtors
from tests.support.infra import Infra
from tests.support.resident import Resident
from tests.support.suite import Suite, start_suite, stop_suite

REPLICAS = {"notifier": 3, "auth": 2, "gateway": 2}


@pytest.fixture(scope="module")
async def scaled(infra: Infra) -> AsyncIterator[Suite]:
    suite = await start_suite(infra, name="replicas", replicas=REPLICAS, extra_env=small_pools())
    yield suite
    await stop_suite(suite)


def replicas_of(suite: Suite, service: str) -> list[str]:
    names = [service] + [f"{service}-{n}" for n in range(2, REPLICAS[service] + 1)]
    assert all(name in suite.processes.processes for name in names)
    return names


async def per_replica(suite: Suite, service: str, metric: str, **labels: str) -> dict[str, float]:
    return {
        name: total(await scrape(suite.processes[name].spec.url), metric, **labels)
        for name in replicas_of(suite, service)
    }


async def test_debtor_events_are_shared_by_the_auth_replicas_and_applied_once(scaled: Suite) -> None:
    suite = scaled
    town = await suite.create_town()
    emails = await upsert_debtors(suite, town, [f"R{n:04d}" for n in range(300)], concurrency=8)
    produced = await count(
        suite, "invoices", "SELECT count(*) FROM outbox WHERE event_type = 'invoices.debtor_upserted'"
    )
    labels = {"type": "invoices.debtor_upserted", "outcome": "handled"}

    async def all_handled() -> bool:
        return (
            sum((await per_replica(suite, "auth", "portail_events_consumed_total", **labels)).values())
            == produced
        )

    await eventually(all_handled, timeout=60, what="the auth replicas handled every debtor event")
    handled = await per_replica(suite, "auth", "portail_events_consumed_total", **labels)
    assert all(n > 0 for n in handled.values()), f"a replica got no work: {handled}"
    known = await count(suite, "auth", "SELECT count(*) FROM known_emails WHERE town_id = $1", town.town_id)
    assert known == len(emails)
    applied = await count(
        suite, "auth", "SELECT count(*) FROM inbox WHERE event_type = 'invoices.debtor_upserted'"
    )
    assert applied == produced, "each event recorded once in the one inbox the replicas share"
    print(f"\ndebtor events: {produced}, handled per auth replica: {handled}")


async def test_activation_requests_spread_over_gateways_auths_and_notifiers_and_each_mail_arrives_once(
    scaled: Suite,
) -> None:
    suite = scaled
    town = await suite.create_town()
    addresses = [f"foyer{n:03d}.{secrets.token_hex(2)}@{town.host}" for n in range(90)]
    for start in range(0, len(addresses), 10):
        await suite.call(
            "PUT",
            "invoices",
            f"/office/debtors/F{start:03d}",
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
    gate = asyncio.Semaphore(8)

    async def request(address: str) -> None:
        async with gate:
            resident = Resident(suite, town, address)  # its own connection: the balancer spreads those
            try:
                answer = await resident.request_activation()
                assert answer.status == 303, answer.text[:300]
            finally:
                await resident.close()

    await asyncio.gather(*(request(a) for a in addresses))

    async def all_arrived() -> bool:
        return all(suite.mail.to(a) for a in addresses)

    await eventually(all_arrived, timeout=60, what="every activation e-mail arrived")
    await asyncio.sleep(1.0)  # a second copy would show up now
    assert {a: len(suite.mail.to(a)) for a in addresses} == dict.fromkeys(addresses, 1)
    assert len({m.message_id for a in addresses for m in suite.mail.to(a)}) == len(addresses)

    pages = await per_replica(
        suite, "gateway", "portail_http_requests_total", method="POST", route="/activer"
    )
    calls = await per_replica(
        suite,
        "auth",
        "portail_http_requests_total",
        method="POST",
        route="/towns/{town_id}/activation-requests",
    )
    consumed = await per_replica(
        suite,
        "notifier",
        "portail_events_consumed_total",
        type="auth.activation_requested",
        outcome="handled",
    )
    sent = await per_replica(suite, "notifier", "portail_emails_total", outcome="sent")
    assert all(n > 0 for n in pages.values()), f"a gateway got no request: {pages}"
    assert sum(pages.values()) == len(addresses)
    assert all(n > 0 for n in calls.values()), f"an auth replica got no call: {calls}"
    assert sum(calls.values()) == len(addresses)
    assert all(n > 0 for n in consumed.values()), f"a notifier got no event: {consumed}"
    assert sum(consumed.values()) == len(addresses), "each event handled by exactly one notifier"
    assert sum(1 for n in sent.values() if n > 0) >= 2, f"e-mails sent by one notifier only: {sent}"
    print(
        f"\nactivation: pages per gateway {pages}; calls per auth {calls};"
        f" events per notifier {consumed}; e-mails sent per notifier {sent}"
    )
