"""The whole suite started for the tests: real processes for every service, the gateway and the PayFiP
simulator, an in-process SMTP server (aiosmtpd) standing for the mail server, on this run's names."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
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
            "regies": [
                {
                    "code": "CENTRALE",
                    "name": "REGIE CENTRALISEE",
                    "payfip_client_number": "001964",
                    "payfip_mode": "T",
                    "online_payment_enabled": True,
                    "grouped_payment_allowed": True,
                },
                {
                    "code": "EAU",
                    "name": "Régie de l'eau",
                    "payfip_client_number": "010203",
                    "payfip_mode": "T",
                    "online_payment_enabled": True,
                    "grouped_payment_allowed": False,
                },
            ],
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


async def start_suite(
    infra: Infra,
    *,
    replicas: dict[str, int] | None = None,
    name: str | None = None,
    extra_env: dict[str, dict[str, str]] | None = None,
) -> Suite:
    """Start every process. `name` gives the suite databases, queues and an exchange of its own, so a
    test can stop and restart its processes without disturbing the session's shared suite."""
    mail = MailStore()
    smtp = SinkHandler(mail)
    smtp_port = free_port()
    smtp_server = await start_smtp(smtp, "127.0.0.1", smtp_port)
    db_prefix, exchange, queue_prefix = infra.run_id, infra.exchange, infra.queue_prefix
    if name is not None:
        db_prefix, exchange, queue_prefix = (
            f"{infra.run_id}_{name}",
            f"{infra.run_id}.{name}.events",
            f"{infra.run_id}.{name}",
        )
        infra.queues.extend(f"{queue_prefix}.{service}" for service in SERVICES)
        infra.exchanges.extend([exchange, dead_letter_exchange_name(exchange)])
    env = {key: dict(value) for key, value in FAST_TIMERS.items()}
    for key, value in (extra_env or {}).items():
        env[key] = env.get(key, {}) | value
    config = SuiteConfig.with_free_ports(
        database_url=infra.database_url,
        amqp_url=infra.amqp_url,
        db_prefix=db_prefix,
        exchange=exchange,
        queue_prefix=queue_prefix,
        smtp_port=smtp_port,
        internal_token="test-internal-" + secrets.token_hex(8),
        gateway_secret="test-secret-" + secrets.token_hex(16),
        replicas=replicas or {},
        extra_env=env,
    )
    for service in SERVICES:
        await ensure_database(config.database(service))
    logs = ARTIFACTS / "logs" / infra.run_id
    group = ProcessGroup(logs / name if name else logs)
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
