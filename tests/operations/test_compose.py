"""docker-compose.yml cannot run here (no Docker engine), so it is read and checked against the code:
service names, environment variables, ports and health checks must agree with the services' settings
and with the development runner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from gateway.settings import Settings as GatewaySettings
from services.auth.settings import Settings as AuthSettings
from services.invoices.settings import Settings as InvoicesSettings
from services.notifier.settings import Settings as NotifierSettings
from services.payments.settings import Settings as PaymentsSettings
from tools.suite import SuiteConfig, service_env, suite_specs

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[str, type[BaseSettings]] = {
    "auth": AuthSettings,
    "invoices": InvoicesSettings,
    "payments": PaymentsSettings,
    "notifier": NotifierSettings,
    "gateway": GatewaySettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = data["services"]
    return services


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_compose_has_the_whole_suite(compose: dict[str, Any]) -> None:
    assert set(compose) >= {"postgres", "rabbitmq", "mailcatcher", "payfip-simulator", *SETTINGS, "seed"}
    assert "management" in compose["rabbitmq"]["image"]
    init = (ROOT / "deploy" / "docker" / "postgres-init.sql").read_text()
    for name in ("auth", "invoices", "payments", "notifier"):
        assert f"CREATE DATABASE portail_{name};" in init


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_variable_is_a_setting_of_its_service(compose: dict[str, Any], name: str) -> None:
    settings = SETTINGS[name]
    prefix = str(settings.model_config.get("env_prefix", ""))
    assert prefix == name.upper() + "_"
    fields = set(settings.model_fields)
    for key in _env(compose[name]):
        assert key.startswith(prefix), f"{name}: {key} does not carry the prefix {prefix}"
        assert key[len(prefix) :].lower() in fields, f"{name}: {key} is not a setting of the service"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_ports_health_checks_and_commands_agree(compose: dict[str, Any], name: str) -> None:
    service = compose[name]
    env = _env(service)
    port = env[f"{name.upper()}_PORT"]
    check = " ".join(service["healthcheck"]["test"])
    expected = "/healthz" if name == "payfip-simulator" else "/readyz"
    assert f"127.0.0.1:{port}{expected}" in check
    module = "gateway" if name == "gateway" else f"services.{name}"
    assert service["command"] == ["python", "-m", module]
    assert (ROOT / module.replace(".", "/") / "__main__.py").exists()
    assert env[f"{name.upper()}_HOST"] == "0.0.0.0"


def test_addresses_point_at_services_on_their_ports(compose: dict[str, Any]) -> None:
    ports = {name: _env(compose[name])[f"{name.upper()}_PORT"] for name in SETTINGS}
    ports["payfip-simulator"] = _env(compose["payfip-simulator"])["PAYFIP_SIM_PORT"]
    for name in SETTINGS:
        for key, value in _env(compose[name]).items():
            for host, port in re.findall(r"https?://([a-z-]+):(\d+)", value):
                if host == "localhost":
                    continue  # an address for the resident's browser, outside the compose network
                assert host in compose, f"{name}.{key} points at {host}, which compose does not run"
                if host in ports:
                    assert port == ports[host], (
                        f"{name}.{key} uses port {port}, {host} listens on {ports[host]}"
                    )
    notifier = _env(compose["notifier"])
    assert notifier["NOTIFIER_SMTP_HOST"] == "mailcatcher"
    assert _env(compose["payments"])["PAYMENTS_PAYFIP_URL"].startswith("http://payfip-simulator:")
    # The resident's browser cannot resolve payfip-simulator: it goes to the published port, which the
    # simulator's own links and the gateway's CSP (form-action) name too.
    page = _env(compose["payments"])["PAYMENTS_PAYFIP_PAGE_URL"]
    assert page == _env(compose["payfip-simulator"])["PAYFIP_SIM_PUBLIC_URL"] == "http://localhost:8010"
    assert _env(compose["gateway"])["GATEWAY_PAYFIP_ORIGIN"] == page
    for name in ("auth", "invoices", "payments", "notifier"):
        assert f"@postgres:5432/portail_{name}" in _env(compose[name])[f"{name.upper()}_DATABASE_URL"]
        assert "@rabbitmq:5672" in _env(compose[name])[f"{name.upper()}_AMQP_URL"]


def test_compose_and_the_development_runner_configure_the_same_settings(compose: dict[str, Any]) -> None:
    config = SuiteConfig()
    runner = {spec.name: set(spec.env) for spec in suite_specs(config)}
    for name in ("auth", "invoices", "payments", "notifier"):
        dev_keys = set(service_env(config, name, 1)) - {
            f"{name.upper()}_{k}" for k in ("EXCHANGE", "QUEUE_PREFIX", "LOG_LEVEL")
        }
        compose_keys = set(_env(compose[name])) - {f"{name.upper()}_HOST"}
        assert dev_keys == compose_keys, (name, dev_keys ^ compose_keys)
    gateway_dev = runner["gateway"] - {"GATEWAY_LOG_LEVEL"}
    assert gateway_dev == set(_env(compose["gateway"])) - {"GATEWAY_HOST"}
