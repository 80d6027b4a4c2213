"""The whole suite as processes: one description shared by the development runner and the tests.

Every service gets its own database (`<prefix>_<service>`), the same exchange and queue prefix, the
internal token, and the addresses of what it talks to. Several replicas of a service are several
processes with the same settings on ports of their own, behind a round-robin balancer on the service's
usual port (tools/balancer.py, the local stand-in for a Kubernetes Service): whoever calls the service
reaches every replica, and every replica consumes from the service's one queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.plumbing.db import with_database
from tools.processes import ProcessSpec, free_port

SERVICES = ("auth", "invoices", "payments", "notifier")
DEV_PORTS = {
    "gateway": 8000,
    "auth": 8001,
    "invoices": 8002,
    "payments": 8003,
    "notifier": 8004,
    "payfip": 8010,
}


@dataclass
class SuiteConfig:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # The same server seen through another address (the chaos tests put a TCP proxy there to cut it).
    services_database_url: str | None = None
    db_prefix: str = "portail"
    exchange: str = "portail.events"
    queue_prefix: str = "portail"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEV_PORTS))
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    internal_token: str = "development-internal-token"
    gateway_secret: str = "development-only-secret-change-me"
    log_level: str = "INFO"
    replicas: dict[str, int] = field(default_factory=dict)
    # Extra environment per process name (tests shorten timers this way).
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)

    def database(self, service: str) -> str:
        return with_database(self.database_url, f"{self.db_prefix}_{service}")

    def service_database(self, service: str) -> str:
        """The address the service itself uses for its database."""
        return with_database(self.services_database_url or self.database_url, f"{self.db_prefix}_{service}")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @classmethod
    def with_free_ports(cls, **kwargs: object) -> SuiteConfig:
        config = cls(**kwargs)  # type: ignore[arg-type]
        config.ports = {name: free_port() for name in DEV_PORTS}
        return config


def service_env(config: SuiteConfig, service: str, port: int) -> dict[str, str]:
    prefix = service.upper() + "_"
    env = {
        "PORT": str(port),
        "DATABASE_URL": config.service_database(service),
        "AMQP_URL": config.amqp_url,
        "EXCHANGE": config.exchange,
        "QUEUE_PREFIX": config.queue_prefix,
        "INTERNAL_TOKEN": config.internal_token,
        "LOG_LEVEL": config.log_level,
    }
    if service == "notifier":
        env |= {"SMTP_HOST": config.smtp_host, "SMTP_PORT": str(config.smtp_port)}
    if service == "payments":
        env |= {
            "PAYFIP_URL": config.url("payfip"),
            "PAYFIP_PAGE_URL": config.url("payfip"),
            "INVOICES_URL": config.url("invoices"),
            "PUBLIC_NOTIFICATION_BASE": config.url("gateway"),
        }
    return {prefix + key: value for key, value in env.items()}


@dataclass(frozen=True)
class Frontend:
    """A balancer on a service's usual port in front of its replicas' ports."""

    name: str
    port: int
    targets: list[int]


@dataclass
class SuitePlan:
    specs: list[ProcessSpec]
    frontends: list[Frontend]


def suite_specs(config: SuiteConfig) -> list[ProcessSpec]:
    return suite_plan(config).specs


def suite_plan(config: SuiteConfig) -> SuitePlan:
    """The simulator, every service (with its replicas), then the gateway; balancers for replicas."""
    specs = [
        ProcessSpec(
            "payfip",
            "tools.payfip_simulator",
            config.ports["payfip"],
            {"PAYFIP_SIM_PORT": str(config.ports["payfip"]), "PAYFIP_SIM_LOG_LEVEL": config.log_level}
            | config.extra_env.get("payfip", {}),
            ready_path="/healthz",
        )
    ]
    frontends = []

    def ports_of(name: str) -> list[int]:
        count = config.replicas.get(name, 1)
        if count == 1:
            return [config.ports[name]]
        ports = [free_port() for _ in range(count)]
        frontends.append(Frontend(name, config.ports[name], ports))
        return ports

    for service in SERVICES:
        for replica, port in enumerate(ports_of(service)):
            name = service if replica == 0 else f"{service}-{replica + 1}"
            env = service_env(config, service, port) | config.extra_env.get(
                name, config.extra_env.get(service, {})
            )
            specs.append(ProcessSpec(name, f"services.{service}", port, env))
    for replica, port in enumerate(ports_of("gateway")):
        name = "gateway" if replica == 0 else f"gateway-{replica + 1}"
        gateway_env = {
            "GATEWAY_PORT": str(port),
            "GATEWAY_AUTH_URL": config.url("auth"),
            "GATEWAY_INVOICES_URL": config.url("invoices"),
            "GATEWAY_PAYMENTS_URL": config.url("payments"),
            "GATEWAY_INTERNAL_TOKEN": config.internal_token,
            "GATEWAY_SECRET_KEY": config.gateway_secret,
            "GATEWAY_PAYFIP_ORIGIN": config.url("payfip"),
            "GATEWAY_LOG_LEVEL": config.log_level,
        } | config.extra_env.get(name, config.extra_env.get("gateway", {}))
        specs.append(ProcessSpec(name, "gateway", port, gateway_env))
    return SuitePlan(specs, frontends)
