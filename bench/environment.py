"""The suite the benchmarks measure: every process for real, on this run's own databases and queues,
logging at WARNING (a benchmark measures the work, not the log lines)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.support.infra import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, Infra
from tests.support.suite import Suite, start_suite, stop_suite

QUIET = {
    name: {f"{name.upper()}_LOG_LEVEL": "WARNING"}
    for name in ("auth", "invoices", "payments", "notifier", "gateway")
}


def bench_infra() -> Infra:
    infra = Infra(
        os.environ.get("PORTAIL_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        os.environ.get("PORTAIL_BENCH_AMQP_URL", DEFAULT_AMQP_URL),
    )
    infra.run_id = "b" + infra.run_id[1:]
    return infra


@asynccontextmanager
async def running_suite(
    infra: Infra, extra_env: dict[str, dict[str, str]] | None = None
) -> AsyncIterator[Suite]:
    env = {name: dict(values) for name, values in QUIET.items()}
    for name, values in (extra_env or {}).items():
        env.setdefault(name, {}).update(values)
    suite = await start_suite(infra, extra_env=env, name="bench")
    try:
        yield suite
    finally:
        await stop_suite(suite)
