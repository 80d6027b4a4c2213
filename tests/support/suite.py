"""The whole suite started for the tests: real processes for every service, the gateway and the PayFiP
simulator, an in-process SMTP server (aiosmtpd) standing for the mail server, on this run's names."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from shared.plumbing.bus import dead_letter_exchange_name
from shared.plumbing.db import ensure_database
from shared.plumbing.web import INTERNAL_TOKEN_HEADER
from tests.support.infra import Infra
from tools.balancer import Balancer
from tools.demo_data import CENTRAL_REGIE, WATER_REGIE
from tools.mailsink.smtp import SinkHandler, start_smtp
from tools.mailsink.store import MailStore, StoredMessage
from tools.processes import ROOT, ProcessGroup, free_port
from tools.suite import SERVICES, SuiteConfig, suite_plan

ARTIFACTS = ROOT / "test-artifacts"

# Timers shortened so that retries and sweeps happen within a test's patience.
FAST_TIMERS: dict[str, dict[str, str]] = {
    "notifier": {"NOTIFIER_RETRY_BASE_SECONDS": "0.2", "NOTIFIER_SWEEP_SECONDS": "0.5"},
}


@dataclass
class TownHandle:
    slug: str
    host: str
    town_id: uuid.UUID
    public_url: str
    api_key: str
    data: dict[str, Any]

    @property
    def office_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class Suite:
    infra: Infra
    config: SuiteConfig
    processes: ProcessGroup
    mail: MailStore
    smtp: SinkHandler
    _admin: aiohttp.ClientSession
    smtp_server: asyncio.Server
    towns: list[TownHandle] = field(default_factory=list)
    # Round-robin balancers in front of services that run several replicas (by service name).
    balancers: dict[str, Balancer] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.config.url(name)

    @property
    def admin_headers(self) -> dict[str, str]:
        return {INTERNAL_TOKEN_HEADER: self.config.internal_token}

    async def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        expect: int | None = None,
    ) -> tuple[int, Any]:
        """Call a service directly (as another service would, with the internal token)."""
        async with self._admin.request(
            method, self.url(service) + path, json=json, headers={**self.admin_headers, **(headers or {})}
        ) as response:
            body = await response.json(content_type=None) if response.content_length != 0 else None
            if expect is not None and response.status != expect:
                raise AssertionError(
                    f"{method} {service}{path}: expected {expect}, got {response.status}: {body}"
                )
            return response.status, body

    async def create_town(self, **overrides: Any) -> TownHandle:
        """A fresh town with its own host name, so tests never see each other's residents."""
        slug = "t" + secrets.token_hex(4)
        host = f"{slug}.localhost"
        public_url = f"http://{host}:{self.config.ports['gateway']}"
        body = {
            "name": f"Commune de test {slug}",
            "public_url": public_url,
            "hosts": [host],
            "contact_email": f"factures@{host}",
            "alerts_enabled": True,
            "password_min_length": 8,
            # The demo town's régies: the manual's central one (grouped payment allowed) and water.
            "regies": [dict(CENTRAL_REGIE), dict(WATER_REGIE)],
        } | overrides
        _, town = await self.call("PUT", "invoices", f"/admin/towns/{slug}", json=body, expect=200)
        _, key = await self.call(
            "POST", "invoices", f"/admin/towns/{slug}/api-keys", json={"label": "tests"}, expect=201
        )
        handle = TownHandle(slug, host, uuid.UUID(town["town_id"]), public_url, key["api_key"], town)
        self.towns.append(handle)
        return handle

    async def wait_for_mail(
        self, to: str, *, subject_contains: str = "", count: int = 1, timeout: float = 20.0
    ) -> list[StoredMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.mail.to(to) if subject_contains in m.subject]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        seen = [(m.rcpt_to, m.subject) for m in self.mail.messages[-10:]]
        raise AssertionError(
            f"no {count} mail(s) to {to} with {subject_contains!r} after {timeout}s; last: {seen}"
        )

    async def db(self, service: str) -> asyncpg.Connection:
        return await asyncpg.connect(self.config.database(service))


def suite_config(
    infra: Infra,
    *,
    replicas: dict[str, int] | None = None,
    extra_env: dict[str, dict[str, str]] | None = None,
    namespace: str | None = None,
    amqp_url: str | None = None,
    services_database_url: str | None = None,
) -> SuiteConfig:
    """The suite's settings on this run's names. A `namespace` gives a suite databases, an exchange and
    queues of its own, so that it runs beside the session's shared one (other timers, processes a test
    kills). `amqp_url` / `services_database_url` let a test put a proxy or a dedicated broker between
    the services and their infrastructure."""
    run = infra.run_id if namespace is None else f"{infra.run_id}_{namespace}"
    queue_prefix = infra.queue_prefix if namespace is None else f"{infra.queue_prefix}.{namespace}"
    exchange = infra.exchange if namespace is None else f"{infra.run_id}.{namespace}.events"
    env: dict[str, dict[str, str]] = {name: dict(values) for name, values in FAST_TIMERS.items()}
    for name, values in (extra_env or {}).items():
        env[name] = env.get(name, {}) | values
    config = SuiteConfig.with_free_ports(
        database_url=infra.database_url,
        amqp_url=amqp_url or infra.amqp_url,
        services_database_url=services_database_url,
        db_prefix=run,
        exchange=exchange,
        queue_prefix=queue_prefix,
        smtp_port=free_port(),
        internal_token="test-internal-" + secrets.token_hex(8),
        gateway_secret="test-secret-" + secrets.token_hex(16),
        replicas=replicas or {},
        extra_env=env,
    )
    if namespace is not None:
        # The session's clean-up drops what a run leaves behind; a namespaced suite's names too.
        infra.queues.extend(f"{queue_prefix}.{service}" for service in SERVICES)
        infra.exchanges.extend([exchange, dead_letter_exchange_name(exchange)])
    return config


async def start_suite(
    infra: Infra,
    *,
    replicas: dict[str, int] | None = None,
    name: str | None = None,
    extra_env: dict[str, dict[str, str]] | None = None,
    amqp_url: str | None = None,
    services_database_url: str | None = None,
    config: SuiteConfig | None = None,
) -> Suite:
    """Start every process; `name` is the namespace of a suite of its own (see `suite_config`)."""
    config = config or suite_config(
        infra,
        replicas=replicas,
        extra_env=extra_env,
        namespace=name,
        amqp_url=amqp_url,
        services_database_url=services_database_url,
    )
    mail = MailStore()
    smtp = SinkHandler(mail)
    smtp_server = await start_smtp(smtp, "127.0.0.1", config.smtp_port)
    for service in SERVICES:
        await ensure_database(config.database(service))
    log_dir = ARTIFACTS / "logs" / infra.run_id
    if config.db_prefix != infra.run_id:
        log_dir = log_dir / config.db_prefix.removeprefix(infra.run_id + "_")
    group = ProcessGroup(log_dir)
    plan = suite_plan(config)
    balancers = {f.name: Balancer(f.name, f.port, f.targets) for f in plan.frontends}
    try:
        for balancer in balancers.values():
            await balancer.start()
        await group.start(plan.specs)
    except Exception:
        await group.stop(timeout=5)
        for balancer in balancers.values():
            await balancer.stop()
        smtp_server.close()
        raise
    return Suite(infra, config, group, mail, smtp, aiohttp.ClientSession(), smtp_server, balancers=balancers)


async def stop_suite(suite: Suite) -> None:
    await suite._admin.close()
    await suite.processes.stop(timeout=20)
    for balancer in suite.balancers.values():
        await balancer.stop()
    suite.smtp_server.close()


def log_of(suite: Suite, process: str) -> Path:
    return suite.processes[process].log_path


@asynccontextmanager
async def extra_gateway(
    suite: Suite, name: str, env: dict[str, str], *, ready_path: str = "/readyz"
) -> AsyncIterator[int]:
    """A second gateway process beside the suite's, on the suite's settings changed by `env` (another
    service address, production…); yields its port. The town hosts are the same, so a resident's cookies
    work on both (they belong to the host name, not the port). `ready_path="/healthz"` when its /readyz
    is meant to fail (a service it calls is cut on purpose)."""
    [spec] = [s for s in suite_plan(suite.config).specs if s.name == "gateway"]
    port = free_port()
    spec = dataclasses.replace(
        spec, name=name, port=port, ready_path=ready_path, env=spec.env | {"GATEWAY_PORT": str(port)} | env
    )
    group = ProcessGroup(ARTIFACTS / "logs" / suite.infra.run_id / name)
    try:
        await group.start([spec])
        yield port
    finally:
        await group.stop(timeout=10)
