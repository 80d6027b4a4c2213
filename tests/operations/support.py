"""Helpers for the operations tests: reading the processes' JSON logs and metrics, waiting, driving load."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from shared.contracts import EventPayload, envelope_for
from shared.plumbing.bus import OutgoingMessage, Publisher
from tests.support import waiting
from tests.support.suite import Suite, TownHandle


def small_pools(**more: dict[str, str]) -> dict[str, dict[str, str]]:
    """Extra environment for a test's own suite: small connection pools, since it runs beside the
    session's suite on a PostgreSQL whose connections are limited (100 by default), plus `more`."""
    env = {
        service: {f"{service.upper()}_DB_POOL_MIN": "1", f"{service.upper()}_DB_POOL_MAX": "3"}
        for service in ("auth", "invoices", "payments", "notifier")
    }
    for name, values in more.items():
        env[name] = env.get(name, {}) | values
    return env


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "") -> None:
    """The shared `eventually`, with the longer patience of tests that restart processes."""
    await waiting.eventually(check, timeout=timeout, what=what)


def log_events(path: Path, event: str | None = None) -> list[dict[str, Any]]:
    """The JSON log lines of a process (all its lives: the log file is appended to on restart)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if event is None or record.get("event") == event:
            found.append(record)
    return found


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A process's /metrics as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as response:
        assert response.status == 200, url
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, found), value in samples.items() if sample == name and wanted <= set(found))


async def upsert_debtors(
    suite: Suite, town: TownHandle, references: Iterable[str], *, concurrency: int = 8, pause: float = 0.0
) -> list[str]:
    """The billing office declares debtors (one e-mail each) through the invoices office API."""
    references = list(references)
    emails = [f"{reference.lower()}@{town.host}" for reference in references]
    gate = asyncio.Semaphore(concurrency)

    async def one(reference: str, email: str) -> None:
        async with gate:
            await suite.call(
                "PUT",
                "invoices",
                f"/office/debtors/{reference}",
                json={"name": f"DEBITEUR {reference}", "emails": [email]},
                headers=town.office_headers,
                expect=200,
            )
            if pause:
                await asyncio.sleep(pause)

    await asyncio.gather(*(one(r, e) for r, e in zip(references, emails, strict=True)))
    return emails


async def count(suite: Suite, service: str, sql: str, *args: Any) -> int:
    conn = await suite.db(service)
    try:
        value: int = await conn.fetchval(sql, *args)
        return value
    finally:
        await conn.close()


async def publish_events(suite: Suite, payloads: list[EventPayload], *, producer: str) -> list[str]:
    """Publish events straight to the suite's exchange, as the producing service's relay would (a burst
    larger than the HTTP APIs can make quickly). Returns their event ids."""
    publisher = Publisher(suite.config.amqp_url, suite.config.exchange, connection_name="test-burst")
    await publisher.start()
    try:
        envelopes = [envelope_for(p, producer=producer, correlation_id="test-burst") for p in payloads]
        messages = [
            OutgoingMessage(
                event_id=str(e.event_id),
                event_type=e.type,
                version=e.version,
                routing_key=e.routing_key,
                correlation_id=e.correlation_id,
                body=e.model_dump_json().encode(),
            )
            for e in envelopes
        ]
        for start in range(0, len(messages), 500):
            results = await publisher.publish_many(messages[start : start + 500])
            assert not [r for r in results if r is not None], results[:3]
        return [str(e.event_id) for e in envelopes]
    finally:
        await publisher.close()
