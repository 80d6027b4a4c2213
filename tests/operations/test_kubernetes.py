"""deploy/kubernetes, checked offline: each overlay is rendered with `kubectl kustomize`; every built-in
object is validated against the Kubernetes JSON schemas of a pinned version (kubernetes-validate), the
operators' objects against the schemas vendored in deploy/kubernetes/schemas; then the references between
objects and to the code are checked (settings, secrets, ports, selectors, probes), so the manifests cannot
drift from the services as docker-compose.yml cannot (test_compose.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from gateway.settings import Settings as GatewaySettings
from services.auth.settings import Settings as AuthSettings
from services.invoices.settings import Settings as InvoicesSettings
from services.notifier.settings import Settings as NotifierSettings
from services.payments.settings import Settings as PaymentsSettings
from tools.payfip_simulator.settings import SimulatorSettings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("base", "production", "development")
# The Kubernetes version the manifests must be valid for (the oldest the operations team runs).
KUBERNETES_VERSION = "1.30"

COMPONENTS = ("gateway", "auth", "invoices", "payments", "notifier")
DATABASE_SERVICES = ("auth", "invoices", "payments", "notifier")
SETTINGS: dict[str, type[BaseSettings]] = {
    "services.auth": AuthSettings,
    "services.invoices": InvoicesSettings,
    "services.payments": PaymentsSettings,
    "services.notifier": NotifierSettings,
    "gateway": GatewaySettings,
    "tools.payfip_simulator": SimulatorSettings,
}
# Schemas for the operators' custom resources: hand-written subsets of their documented fields.
CUSTOM_SCHEMAS = {
    ("postgresql.cnpg.io/v1", "Cluster"): "cluster-postgresql.cnpg.io-v1.json",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster-rabbitmq.com-v1beta1.json",
}
# Keys of the secrets the operators generate (CloudNativePG's `<cluster>-app`, the RabbitMQ Cluster
# Operator's `<cluster>-default-user`).
CNPG_APP_KEYS = {"uri", "username", "password", "host", "port", "dbname", "jdbc-uri", "pgpass"}
RABBITMQ_USER_KEYS = {"username", "password", "host", "port"}
# Secrets the operations team creates (never committed); docs/operations.md says how.
TEAM_SECRETS = {
    "portail-internal-token": {"token"},
    "portail-gateway": {"secret-key"},
    "portail-smtp": {"username", "password"},
}


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is needed to render deploy/kubernetes (`kubectl kustomize`, offline): install it, e.g. "
            "`apt-get install kubernetes-client` or the static binary from the Kubernetes release",
            pytrace=False,
        )
    path = KUBERNETES / ("base" if overlay == "base" else f"overlays/{overlay}")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(owner name, pod spec, container) for every container of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield doc["metadata"]["name"], pod, container


def module_of(container: dict[str, Any]) -> str | None:
    command = container.get("command") or []
    return command[2] if command[:2] == ["python", "-m"] else None


def configmap_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    maps = of_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"{container['name']}: envFrom ConfigMap {name} is not rendered"
        env |= maps[name].get("data", {})
    return env


def literal_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """What the process sees that is not secret: its ConfigMaps, then its plain `value`s."""
    values = configmap_env(docs, container)
    values |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return values


def test_each_overlay_renders_and_every_object_matches_its_schema(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, docs = manifests
    problems = []
    for doc in docs:
        where = f"{overlay}: {doc['kind']}/{doc['metadata']['name']}"
        custom = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        try:
            if custom is not None:
                schema = json.loads((KUBERNETES / "schemas" / custom).read_text())
                jsonschema.Draft202012Validator(schema).validate(doc)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            problems.append(f"{where}: {error.message} at {'/'.join(map(str, error.absolute_path))}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{where}: no schema ({error.message})")
    assert not problems, "\n".join(problems)


def test_vendored_operator_schemas_are_valid_json_schemas() -> None:
    for name in CUSTOM_SCHEMAS.values():
        schema = json.loads((KUBERNETES / "schemas" / name).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert "hand-written subset" in schema["title"], name


def test_every_component_has_a_deployment_service_autoscaler_and_disruption_budget(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    _overlay, docs = manifests
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert set(COMPONENTS) <= set(of_kind(docs, kind)), kind
    for name in DATABASE_SERVICES:
        assert f"portail-{name}-db" in of_kind(docs, "Cluster")
    assert set(of_kind(docs, "RabbitmqCluster")) == {"portail-rabbitmq"}
    for name, deployment in of_kind(docs, "Deployment").items():
        # The autoscaler owns the replica count; a fixed one would fight it on every apply.
        if name in COMPONENTS:
            assert "replicas" not in deployment["spec"], name


def test_every_variable_is_a_setting_of_its_process(manifests: tuple[str, list[dict[str, Any]]]) -> None:
    _overlay, docs = manifests
    seen = set()
    for owner, _pod, container in containers(docs):
        module = module_of(container)
        names = [e["name"] for e in container.get("env", [])] + list(configmap_env(docs, container))
        if module == "tools.seed":
            source = (ROOT / "tools" / "seed.py").read_text()
            assert all(f'"{n}"' in source for n in names), (owner, names)
            continue
        if module is None:
            continue  # an image of its own (the mail catcher): its variables are its own business
        seen.add(module)
        settings = SETTINGS[module]
        prefix = str(settings.model_config.get("env_prefix", ""))
        fields = set(settings.model_fields)
        values = " ".join(e.get("value", "") for e in container.get("env", []))
        for name in names:
            if f"$({name})" in values:
                continue  # a helper, interpolated into a setting (the broker's user and password)
            assert name.startswith(prefix), f"{owner}: {name} does not carry the prefix {prefix}"
            assert name[len(prefix) :].lower() in fields, f"{owner}: {name} is not a setting of {module}"
    assert {"gateway", *(f"services.{s}" for s in DATABASE_SERVICES)} <= seen


def test_every_secret_and_config_map_referenced_exists_or_is_made_by_an_operator_or_the_team(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    overlay, docs = manifests
    secrets = of_kind(docs, "Secret")
    maps = of_kind(docs, "ConfigMap")
    operator_secrets = {f"{c}-app": CNPG_APP_KEYS for c in of_kind(docs, "Cluster")} | {
        f"{r}-default-user": RABBITMQ_USER_KEYS for r in of_kind(docs, "RabbitmqCluster")
    }
    guide = (ROOT / "docs" / "operations.md").read_text()
    for owner, _pod, container in containers(docs):
        for entry in container.get("env", []):
            source = entry.get("valueFrom", {})
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in maps[ref["name"]]["data"], (owner, ref)
            if "secretKeyRef" not in source:
                continue
            name, key = source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]
            if name in secrets:
                assert key in secrets[name].get("data", {}), f"{owner}: secret {name} has no key {key}"
            elif name in operator_secrets:
                assert key in operator_secrets[name], f"{owner}: the operator's {name} has no key {key}"
            else:
                assert name in TEAM_SECRETS, f"{owner}: nothing makes the secret {name}"
                assert key in TEAM_SECRETS[name], f"{owner}: {name} has no documented key {key}"
                how = rf"kubectl (?:-n \S+ )?create secret generic {name} "
                assert re.search(how, guide), f"docs/operations.md must say how to create {name}"
    if overlay == "production":
        assert not secrets, "production secrets are created in the cluster, never committed"


def test_probes_services_autoscalers_budgets_and_ingresses_point_at_what_exists(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    _overlay, docs = manifests
    deployments = of_kind(docs, "Deployment")
    services = of_kind(docs, "Service")

    def pods_matching(selector: dict[str, str]) -> list[dict[str, Any]]:
        return [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]

    for name, deployment in deployments.items():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p.get("name") for p in container["ports"]} | {
                p["containerPort"] for p in container["ports"]
            }
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in container:
                    continue
                check = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                assert check["port"] in ports, (
                    f"{name}: {probe} on port {check['port']}, not a container port"
                )
            if module_of(container) in SETTINGS and name in COMPONENTS:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name

    for name, service in services.items():
        matching = pods_matching(service["spec"]["selector"])
        assert len(matching) == 1, f"Service {name} selects {len(matching)} Deployments"
        [target] = matching
        ports = {
            key
            for c in target["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
            for key in (p.get("name"), p["containerPort"])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name} targets {port['targetPort']}"

    for name, hpa in of_kind(docs, "HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment", name
        assert target["name"] in deployments, name
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], name

    rabbitmq_pods = {"app.kubernetes.io/name": "portail-rabbitmq"}  # the operator's label on its pods
    for name, budget in of_kind(docs, "PodDisruptionBudget").items():
        selector = budget["spec"]["selector"]["matchLabels"]
        assert pods_matching(selector) or selector == rabbitmq_pods, (
            f"PodDisruptionBudget {name} selects nothing"
        )

    for name, ingress in of_kind(docs, "Ingress").items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services, f"Ingress {name} routes to {backend['name']}"
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]} | {
                    p["port"] for p in services[backend["name"]]["spec"]["ports"]
                }
                assert (backend["port"].get("name") or backend["port"].get("number")) in ports, name


def test_addresses_in_settings_point_at_services_and_their_ports(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    _overlay, docs = manifests
    services = of_kind(docs, "Service")
    operator_services = {r: [5672] for r in of_kind(docs, "RabbitmqCluster")} | {
        f"{c}-rw": [5432] for c in of_kind(docs, "Cluster")
    }
    for owner, _pod, container in containers(docs):
        for key, value in literal_env(docs, container).items():
            for scheme, host, port in re.findall(r"(https?|amqp)://(?:[^@/\s]*@)?([a-z0-9-]+):(\d+)", value):
                known: set[int] | None = None
                if host in services:
                    known = {p["port"] for p in services[host]["spec"]["ports"]}
                elif host in operator_services:
                    known = set(operator_services[host])
                assert known, f"{owner}.{key} ({scheme}) points at {host}, which nothing serves"
                assert int(port) in known, f"{owner}.{key} uses port {port}, {host} serves {known}"


def test_pods_stop_within_their_grace_period_and_run_unprivileged(
    manifests: tuple[str, list[dict[str, Any]]],
) -> None:
    _overlay, docs = manifests
    dockerfile = (ROOT / "Dockerfile").read_text()
    [uid] = re.findall(r"--uid (\d+)", dockerfile)
    [gid] = re.findall(r"--gid (\d+)", dockerfile.split("useradd")[0])
    for owner, pod, container in containers(docs):
        module = module_of(container)
        if module is None:
            continue
        path = ROOT / module.replace(".", "/")
        assert (path / "__main__.py").exists() or path.with_suffix(".py").exists(), (
            f"{owner}: no module {module}"
        )
        security = container["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert str(pod["securityContext"]["runAsUser"]) == uid, f"{owner}: not the image's user {uid}"
        assert str(pod["securityContext"]["runAsGroup"]) == gid, f"{owner}: not the image's group {gid}"
        assert security["allowPrivilegeEscalation"] is False, owner
        assert security["readOnlyRootFilesystem"] is True, owner
        assert security["capabilities"]["drop"] == ["ALL"], owner
        settings = SETTINGS.get(module)
        if owner not in COMPONENTS or settings is None:
            continue
        prefix = str(settings.model_config["env_prefix"])
        budget = float(
            literal_env(docs, container).get(
                prefix + "SHUTDOWN_TIMEOUT_SECONDS", settings.model_fields["shutdown_timeout_seconds"].default
            )
        )
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep", owner
        # The pod is killed after the grace period: the sleep, then the process's whole budget, must fit.
        assert pod["terminationGracePeriodSeconds"] >= float(pre_stop[1]) + budget + 5, owner


def test_each_service_has_its_own_database_and_rabbitmq_runs_three_nodes() -> None:
    docs = render("production")
    clusters = of_kind(docs, "Cluster")
    for _owner, _pod, container in containers(docs):
        module = module_of(container) or ""
        for entry in container.get("env", []):
            if entry["name"].endswith("_DATABASE_URL"):
                service = module.removeprefix("services.")
                ref = entry["valueFrom"]["secretKeyRef"]
                assert (ref["name"], ref["key"]) == (f"portail-{service}-db-app", "uri")
                database = clusters[f"portail-{service}-db"]["spec"]["bootstrap"]["initdb"]["database"]
                assert database == f"portail_{service}"  # the name docker-compose and scripts/dev use
    for cluster in clusters.values():
        assert cluster["spec"]["instances"] == 3
    assert of_kind(docs, "RabbitmqCluster")["portail-rabbitmq"]["spec"]["replicas"] == 3


def test_production_serves_each_town_over_tls_and_calls_the_real_payfip() -> None:
    docs = render("production")
    assert not {"payfip-simulator", "mailcatcher"} & set(of_kind(docs, "Deployment"))
    ingresses = of_kind(docs, "Ingress")
    for name, ingress in ingresses.items():
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"], name
        with_tls = {host for tls in ingress["spec"]["tls"] for host in tls["hosts"]}
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] in with_tls, f"{name}: {rule['host']} has no certificate"
    towns = ingresses["portail-towns"]["spec"]["rules"]
    assert len({r["host"] for r in towns}) == len(towns) >= 2, "one host per town"
    secrets = [tls["secretName"] for tls in ingresses["portail-towns"]["spec"]["tls"]]
    assert len(set(secrets)) == len(secrets), "each town its own certificate"
    [notification] = ingresses["portail-payfip-notification"]["spec"]["rules"]
    assert [p["path"] for p in notification["http"]["paths"]] == ["/payfip/notification"]
    env = {owner: literal_env(docs, c) for owner, _pod, c in containers(docs)}
    assert env["payments"]["PAYMENTS_PAYFIP_URL"] == "https://www.payfip.gouv.fr"
    assert env["payments"]["PAYMENTS_PUBLIC_NOTIFICATION_BASE"] == f"https://{notification['host']}"
    assert env["gateway"]["GATEWAY_PAYFIP_ORIGIN"] == "https://www.payfip.gouv.fr"
    assert env["gateway"]["GATEWAY_ENVIRONMENT"] == "production"


def test_development_runs_the_simulator_and_a_mail_catcher_and_points_the_services_at_them() -> None:
    docs = render("development")
    assert {"payfip-simulator", "mailcatcher"} <= set(of_kind(docs, "Deployment"))
    env = {owner: literal_env(docs, c) for owner, _pod, c in containers(docs)}
    assert env["payments"]["PAYMENTS_PAYFIP_URL"] == "http://payfip-simulator:8010"
    # The browser is sent where it can go: the simulator's public address, which the portal's CSP allows.
    browser_side = env["payments"]["PAYMENTS_PAYFIP_PAGE_URL"]
    assert browser_side == env["payfip-simulator"]["PAYFIP_SIM_PUBLIC_URL"] == "http://payfip.localhost"
    assert env["gateway"]["GATEWAY_PAYFIP_ORIGIN"] == browser_side
    assert env["notifier"]["NOTIFIER_SMTP_HOST"] == "mailcatcher"
    assert "portail-payfip-notification" not in of_kind(docs, "Ingress")
    assert {
        h["metadata"]["name"]: h["spec"]["minReplicas"]
        for h in of_kind(docs, "HorizontalPodAutoscaler").values()
    } == dict.fromkeys(COMPONENTS, 1)
