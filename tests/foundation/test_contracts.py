"""The JSON on the wire is the contract: samples parse, bindings have producers, services stay apart."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from services.auth.consumer import SUBSCRIPTIONS as AUTH
from services.invoices.consumer import SUBSCRIPTIONS as INVOICES
from services.notifier.consumer import subscriptions as notifier_subscriptions
from services.notifier.rendering import EmailRenderer
from services.payments.consumer import SUBSCRIPTIONS as PAYMENTS
from shared.contracts import REGISTRY, Envelope, parse_payload, routing_key
from shared.plumbing.inbox import Subscription

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "shared" / "contracts" / "samples"
SERVICES = ("auth", "invoices", "payments", "notifier")

CONSUMERS: dict[str, list[Subscription]] = {
    "auth": AUTH,
    "invoices": INVOICES,
    "payments": PAYMENTS,
    "notifier": notifier_subscriptions(EmailRenderer(sender="no-reply@example.org", sender_name="Portail")),
}


def produced_by(service: str) -> set[str]:
    """Event types a service's own code constructs (`events.SomeEvent(`), mapped to their type names."""
    by_class = {model.__name__: model.event_type for model in REGISTRY.values()}
    found: set[str] = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        for name in re.findall(r"events\.(\w+)\(", path.read_text()):
            if name in by_class:
                found.add(by_class[name])
    return found


@pytest.mark.parametrize("key", sorted(REGISTRY), ids=lambda k: routing_key(*k))
def test_every_event_type_has_a_sample_that_parses_into_its_model(key: tuple[str, int]) -> None:
    path = SAMPLES / f"{routing_key(*key)}.json"
    assert path.exists(), f"missing sample {path.name}"
    envelope = Envelope.model_validate_json(path.read_text())
    assert (envelope.type, envelope.version) == key
    payload = parse_payload(envelope)
    assert isinstance(payload, REGISTRY[key])
    # The model writes back the same JSON it read: nothing is lost on the way through a service.
    assert payload.model_dump(mode="json") == json.loads(path.read_text())["payload"]


def test_every_sample_is_a_registered_event() -> None:
    for path in SAMPLES.glob("*.json"):
        envelope = Envelope.model_validate_json(path.read_text())
        assert path.name == f"{envelope.routing_key}.json"
        assert (envelope.type, envelope.version) in REGISTRY


def test_every_binding_a_consumer_declares_has_a_producer() -> None:
    for consumer, subscriptions in CONSUMERS.items():
        for subscription in subscriptions:
            event_type = subscription.model.event_type
            producer = event_type.split(".", 1)[0]
            assert producer in SERVICES, f"{consumer} binds {event_type}, whose prefix names no service"
            assert event_type in produced_by(producer), (
                f"{consumer} binds {event_type} but {producer} never produces it"
            )


def test_every_produced_event_has_a_consumer_so_nothing_stays_unroutable() -> None:
    bound = {s.model.event_type for subscriptions in CONSUMERS.values() for s in subscriptions}
    for service in SERVICES:
        for event_type in produced_by(service):
            assert event_type.startswith(service + "."), f"{service} produces {event_type}, named for another"
            assert event_type in bound, f"{event_type} is produced but no service consumes it"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("component", [*(f"services/{s}" for s in SERVICES), "gateway"])
def test_services_never_import_each_other(component: str) -> None:
    own = component.replace("/", ".")
    for path in (ROOT / component).rglob("*.py"):
        for module in _imports(path):
            if module.startswith(("services.", "gateway", "tools", "tests")):
                assert module.startswith(own), f"{path.relative_to(ROOT)} imports {module}"
