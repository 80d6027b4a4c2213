"""Session fixtures: the real PostgreSQL and RabbitMQ, with names that belong to this run only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aio_pika
import asyncpg
import pytest

from shared.plumbing.bus import dead_letter_exchange_name
from tests.support.infra import Infra, InfrastructureMissing, locate_infrastructure
from tests.support.suite import Suite, start_suite, stop_suite

SERVICE_QUEUES = ("auth", "invoices", "payments", "notifier")


@pytest.fixture(scope="session")
async def infra() -> AsyncIterator[Infra]:
    try:
        found, containers = await locate_infrastructure()
    except InfrastructureMissing as problem:
        pytest.fail(str(problem), pytrace=False)
    found.queues.extend(f"{found.queue_prefix}.{name}" for name in SERVICE_QUEUES)
    found.exchanges.extend([found.exchange, dead_letter_exchange_name(found.exchange)])
    yield found
    await _forget_run(found)
    for container in containers:
        container.stop()  # type: ignore[attr-defined]


async def _forget_run(infra: Infra) -> None:
    """Drop this run's databases, queues and exchanges so runs do not pile up on a developer's machine."""
    admin = await asyncpg.connect(infra.database_url)
    try:
        names = await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", infra.run_id + "\\_%"
        )
        for row in names:
            with contextlib.suppress(Exception):
                await admin.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
    finally:
        await admin.close()
    connection = await aio_pika.connect(infra.amqp_url)
    try:
        for queue in sorted(set(infra.queues)):
            for name in (queue, queue + ".dead"):
                channel = await connection.channel()
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name, if_unused=False, if_empty=False)
                with contextlib.suppress(Exception):
                    await channel.close()
        for exchange in sorted(set(infra.exchanges)):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)
            with contextlib.suppress(Exception):
                await channel.close()
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def suite(infra: Infra) -> AsyncIterator[Suite]:
    """The whole suite as real processes, started once per test session."""
    started = await start_suite(infra)
    yield started
    await stop_suite(started)
