"""The dashboard and the alerting rules in deploy/observability speak of metrics that exist: every
expression parses as PromQL, and every metric (and label it filters on) is one the code exposes, or one
of the documented PayFiP metrics the payments service is to expose. What /metrics really serves is checked
on the running processes."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.operations.support import scrape
from tests.support.suite import Suite

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
GUIDE = ROOT / "docs" / "operations.md"

# Metrics the payments service is to expose (its engineer was asked for exactly these; docs/operations.md).
PAYFIP_METRICS = {
    "portail_payfip_calls": ("Counter", {"operation", "outcome"}),
    "portail_payfip_call_duration_seconds": ("Histogram", {"operation"}),
}
# Labels Prometheus adds to every series it scrapes (deploy/observability/prometheus/scrape.yml).
TARGET_LABELS = {"namespace", "service", "pod", "job", "instance"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES: dict[str, set[str]] = {"up": set()}
SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
}
# Metrics whose meaning is the portal's, for which the dashboard must have a panel.
MUST_BE_ON_DASHBOARD = {
    "portail_http_requests_total",
    "portail_http_request_duration_seconds_bucket",
    "portail_events_published_total",
    "portail_events_consumed_total",
    "portail_events_failed_total",
    "portail_outbox_backlog",
    "portail_outbox_oldest_pending_seconds",
    "portail_dead_letter_depth",
    "portail_ready",
    "portail_emails_total",
    "portail_payfip_calls_total",
    "portail_payfip_call_duration_seconds_bucket",
}


def defined_in_code() -> dict[str, tuple[str, set[str]]]:
    """Metric families the code declares (prometheus_client's Counter, Gauge, Histogram): name -> (kind,
    labels), read from the source of shared/, services/ and gateway/."""
    found: dict[str, tuple[str, set[str]]] = {}
    for folder in ("shared", "services", "gateway"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                if (
                    node.func.id not in SUFFIXES
                    or not node.args
                    or not isinstance(node.args[0], ast.Constant)
                ):
                    continue
                labels_node = node.args[2] if len(node.args) > 2 else None
                for keyword in node.keywords:
                    if keyword.arg == "labelnames":
                        labels_node = keyword.value
                labels = {
                    str(e.value) for e in getattr(labels_node, "elts", []) if isinstance(e, ast.Constant)
                }
                name = str(node.args[0].value).removesuffix("_total")
                found[name] = (node.func.id, labels)
    return found


def series() -> dict[str, set[str]]:
    """Every series name a query may use -> the labels it carries."""
    families = PAYFIP_METRICS | defined_in_code()
    names: dict[str, set[str]] = dict(PROMETHEUS_SERIES)
    for family, (kind, labels) in families.items():
        for suffix in SUFFIXES[kind]:
            names[family + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def selectors(expr: Any) -> list[tuple[str, set[str]]]:
    """(metric name, labels it filters on) for every selector in a parsed PromQL expression."""
    if isinstance(expr, promql_parser.VectorSelector):
        return [(str(expr.name), {m.name for m in expr.matchers.matchers})]
    if isinstance(expr, promql_parser.MatrixSelector):
        return selectors(expr.vector_selector)
    found = []
    for attribute in ("lhs", "rhs", "expr", "param"):
        child = getattr(expr, attribute, None)
        if child is not None and not isinstance(child, (int, float, str)):
            found += selectors(child)
    for child in getattr(expr, "args", None) or []:
        found += selectors(child)
    return found


def parse(expr: str) -> Any:
    # Grafana's variables, replaced by what they stand for, so the query parses as Prometheus sees it.
    concrete = expr.replace("$__rate_interval", "5m").replace("${datasource}", "x")
    concrete = re.sub(r"\$[a-z_]+", "x", concrete)
    return promql_parser.parse(concrete)


def check(expr: str, where: str) -> list[str]:
    known = series()
    problems = []
    try:
        parsed = parse(expr)
    except Exception as error:
        return [f"{where}: not PromQL ({error}): {expr}"]
    for name, labels in selectors(parsed):
        if name not in known:
            problems.append(f"{where}: {name} is not a metric the code (or the PayFiP list) defines")
            continue
        unknown = labels - known[name] - TARGET_LABELS - {"__name__"}
        if unknown:
            problems.append(f"{where}: {name} has no label {sorted(unknown)}")
    return problems


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((OBSERVABILITY / "prometheus" / "alerts.yml").read_text())
    return data


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OBSERVABILITY / "grafana" / "portail.json").read_text())
    return data


def alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alert_rules_have_the_structure_prometheus_loads(rules: dict[str, Any]) -> None:
    assert set(rules) == {"groups"}
    names = [g["name"] for g in rules["groups"]]
    assert len(names) == len(set(names))
    for group in rules["groups"]:
        assert set(group) <= {"name", "interval", "rules"}, group["name"]
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"Portail[A-Za-z]+", rule["alert"])
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
    titles = [rule["alert"] for rule in alerts(rules)]
    assert len(titles) == len(set(titles))


def test_the_alerts_the_operations_team_asked_for_are_there(rules: dict[str, Any]) -> None:
    by_name = {rule["alert"]: rule["expr"] for rule in alerts(rules)}
    wanted = {
        "PortailOutboxBacklogGrowing": "portail_outbox_backlog",
        "PortailOutboxStalled": "portail_outbox_oldest_pending_seconds",
        "PortailDeadLetterQueueNotEmpty": "portail_dead_letter_depth",
        "PortailPayfipErrors": "portail_payfip_calls_total",
        "PortailNotReady": "portail_ready",
        "PortailHttpErrors": 'status=~"5..',
        "PortailEmailsFailing": 'portail_emails_total{outcome="failed"}',
    }
    for alert, needle in wanted.items():
        assert needle in by_name[alert], alert


def test_every_alert_expression_uses_metrics_the_code_exposes(rules: dict[str, Any]) -> None:
    problems = [p for rule in alerts(rules) for p in check(rule["expr"], rule["alert"])]
    assert not problems, "\n".join(problems)


def test_every_alert_has_its_runbook_in_the_operators_guide(rules: dict[str, Any]) -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in GUIDE.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alerts(rules):
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor in headings, f"docs/operations.md has no section for {rule['alert']}"


def test_every_dashboard_query_uses_metrics_the_code_exposes(dashboard: dict[str, Any]) -> None:
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    problems = []
    used = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            problems += check(target["expr"], f"panel «{panel['title']}»")
            used |= {name for name, _ in selectors(parse(target["expr"]))}
    assert not problems, "\n".join(problems)
    assert used >= MUST_BE_ON_DASHBOARD, f"no panel for {sorted(MUST_BE_ON_DASHBOARD - used)}"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "service"} <= variables


def test_the_payfip_metrics_asked_of_payments_are_documented_and_agree_with_the_code() -> None:
    guide = GUIDE.read_text()
    code = defined_in_code()
    for family, (kind, labels) in PAYFIP_METRICS.items():
        exposed = family + ("_total" if kind == "Counter" else "")
        assert exposed in guide, f"docs/operations.md must list {exposed}"
        if family in code:  # once payments exposes them, they must be what the dashboard expects
            assert code[family] == (kind, labels), (family, code[family])


async def test_each_process_serves_the_metrics_the_dashboard_reads(suite: Suite) -> None:
    town = await suite.create_town()
    await suite.call(
        "PUT",
        "invoices",
        "/office/debtors/OBS1",
        json={"name": "OBSERVE", "emails": [f"obs@{town.host}"]},
        headers=town.office_headers,
        expect=200,
    )
    families = {
        "auth": {"portail_events_consumed_total", "portail_outbox_backlog", "portail_dead_letter_depth"},
        "invoices": {"portail_events_published_total", "portail_outbox_oldest_pending_seconds"},
        "notifier": {"portail_events_consumed_total", "portail_dead_letter_depth"},
        "gateway": set(),
    }
    for process, expected in families.items():
        found = {name for name, _labels in await scrape(suite.url(process))}
        common = {
            "portail_http_requests_total",
            "portail_http_request_duration_seconds_bucket",
            "portail_ready",
        }
        assert common | expected <= found, (process, sorted(common | expected - found))
        samples = await scrape(suite.url(process))
        assert samples[("portail_ready", ())] == 1.0, process
