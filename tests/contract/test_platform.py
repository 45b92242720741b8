"""What Knative does in a cluster, kept as offline checks of the rendered deployment (nothing here
applies it to a cluster: these encode the platform's documented behaviour, each with its source).

- Knative injects a queue-proxy sidecar into every revision's pod; it listens on 8012 (HTTP/1),
  8013 (HTTP/2), 8022 (admin, probes), 8112 (TLS), 9090 (the autoscaler's metrics) and 9091 (user
  metrics), and profiling uses 8008. The webhook refuses a container port among them, and any
  other listener of the pod on them fails to bind — as the functions' metrics server did on 9090
  (knative/serving pkg/apis/serving/k8s_validation.go ``reservedPorts``;
  pkg/apis/networking/ports.go; the same bind error: tektoncd/triggers#1090).
- Requests reach a revision's queue-proxy from the activator (knative-serving) while it is scaled
  to zero or buffered and directly from the ingress gateway (Kourier: kourier-system) otherwise;
  the autoscaler (knative-serving) scrapes queue-proxy's 9090 (Knative docs, "Request flow").
- The webhook refuses a revision whose ``timeoutSeconds`` exceeds config-defaults'
  ``max-revision-timeout-seconds``, 600 unless changed (knative/docs
  docs/serving/configuration/config-defaults.md); the charts leave config-defaults alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.contract.test_cluster import build, pod_specs
from visitlens.config import Settings
from visitlens.errors import ConfigurationError
from visitlens_dev.runtime.spec import KNATIVE_MAX_TIMEOUT_S, discover, load

QUEUE_PROXY_PORTS = {8008, 8012, 8013, 8022, 8112, 9090, 9091}
TARGETS = ["overlays/dev", "overlays/prod"]


def knative_services(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "Service" and "serving.knative.dev" in d["apiVersion"]]


def ports_a_function_pod_listens_on(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Every port the functions' own processes bind or are scraped on, by where it is declared."""
    found: dict[str, int] = {}
    for service in knative_services(docs):
        name = service["metadata"]["name"]
        annotations = service["spec"]["template"].get("metadata", {}).get("annotations", {})
        if "prometheus.io/port" in annotations:
            found[f"{name}: prometheus.io/port"] = int(annotations["prometheus.io/port"])
        for spec in pod_specs(service):
            for container in spec.get("containers", []):
                for port in container.get("ports", []):
                    found[f"{name}: containerPort"] = int(port["containerPort"])
                for env in container.get("env", []):
                    if env["name"] == "VISITLENS_METRICS__PORT":
                        found[f"{name}: env VISITLENS_METRICS__PORT"] = int(env["value"])
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "VISITLENS_METRICS__PORT" in doc.get("data", {}):
            key = f"ConfigMap/{doc['metadata']['name']}: VISITLENS_METRICS__PORT"
            found[key] = int(doc["data"]["VISITLENS_METRICS__PORT"])
    for doc in build("monitoring"):
        if doc["kind"] == "PodMonitor":
            for endpoint in doc["spec"]["podMetricsEndpoints"]:
                found[f"PodMonitor/{doc['metadata']['name']}"] = int(endpoint["targetPort"])
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_no_function_port_is_one_queue_proxy_holds(target: str) -> None:
    found = ports_a_function_pod_listens_on(build(target))
    assert any("VISITLENS_METRICS__PORT" in k for k in found), found  # the check sees the port
    assert any(k.startswith("PodMonitor/") for k in found), found
    clashes = {where: port for where, port in found.items() if port in QUEUE_PROXY_PORTS}
    assert not clashes, f"ports Knative's queue-proxy holds in the same pod: {clashes}"
    metrics = {
        p for k, p in found.items() if "METRICS" in k or k.startswith(("PodMonitor", "ConfigMap"))
    }
    assert len(metrics) == 1, f"the metrics port is declared differently in places: {found}"


def admitted(policy: dict[str, Any], namespace: str) -> set[int]:
    ports: set[int] = set()
    for rule in policy["spec"].get("ingress", []):
        sources = {
            peer.get("namespaceSelector", {})
            .get("matchLabels", {})
            .get("kubernetes.io/metadata.name")
            for peer in rule.get("from", [])
        }
        if namespace in sources:
            ports |= {int(p["port"]) for p in rule.get("ports", [])}
    return ports


@pytest.mark.parametrize("target", TARGETS)
def test_knative_reaches_the_functions_queue_proxy_and_nothing_else(target: str) -> None:
    policies = [d for d in build(target) if d["kind"] == "NetworkPolicy"]
    to_functions = [
        p for p in policies
        if any(e.get("key") == "serving.knative.dev/service"
               for e in p["spec"]["podSelector"].get("matchExpressions", []))
        and "Ingress" in p["spec"].get("policyTypes", [])
    ]  # fmt: skip
    assert to_functions, "no policy admits Knative to the functions"
    by_source: dict[str, set[int]] = {}
    for namespace in ("knative-serving", "kourier-system", "knative-eventing"):
        by_source[namespace] = set().union(*(admitted(p, namespace) for p in to_functions))
    for namespace in ("knative-serving", "kourier-system"):
        assert {8012, 8022} <= by_source[namespace], (namespace, by_source)
    # deliveries resolve a subscriber's URL to Kourier's internal gateway: never straight
    assert not by_source["knative-eventing"], by_source
    assert 9090 in by_source["knative-serving"], "the autoscaler cannot scrape queue-proxy"
    for namespace, ports in by_source.items():  # the container's own port is queue-proxy's alone
        assert ports <= QUEUE_PROXY_PORTS, (namespace, ports - QUEUE_PROXY_PORTS)


@pytest.mark.parametrize("target", TARGETS)
def test_the_migration_reads_a_secret_the_postgres_operator_creates(target: str) -> None:
    """CloudNativePG creates ``<cluster>-app`` (with ``username``, ``password``, ``uri`` …) for
    the initdb owner only when ``bootstrap.initdb.secret`` is not set; with a user-supplied
    secret there is no ``-app`` secret and a Job reading it never starts (CloudNativePG docs,
    "Bootstrap", initdb credentials). Every secret a pod reads that is named after a cluster must
    be one the operator makes, with a key it writes."""
    docs = build(target)
    clusters = [d for d in docs if d["kind"] == "Cluster" and "cnpg.io" in d["apiVersion"]]
    assert clusters
    generated: dict[str, set[str]] = {}
    for cluster in clusters:
        name = cluster["metadata"]["name"]
        generated[f"{name}-superuser"] = {"username", "password", "uri", "pgpass", "host", "port"}
        if "secret" not in cluster["spec"].get("bootstrap", {}).get("initdb", {}):
            generated[f"{name}-app"] = {"username", "password", "uri", "jdbc-uri", "pgpass",
                                        "host", "port", "dbname", "user"}  # fmt: skip

    def operators(name: str) -> bool:
        return any(name.startswith(c["metadata"]["name"]) for c in clusters)

    read = []  # (pod, secret, key) from environment variables and from (projected) volumes
    for doc in docs:
        for spec in pod_specs(doc):
            for container in spec.get("containers", []) + spec.get("initContainers", []):
                for env in container.get("env", []):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref and operators(ref["name"]):
                        read.append((doc["metadata"]["name"], ref["name"], ref["key"]))
            for volume in spec.get("volumes", []):
                secrets = [volume["secret"]] if "secret" in volume else [
                    source["secret"] for source in volume.get("projected", {}).get("sources", [])
                    if "secret" in source
                ]  # fmt: skip
                for secret in secrets:
                    name = secret.get("secretName", secret.get("name", ""))
                    if operators(name):
                        keys = [item["key"] for item in secret.get("items", [])] or ["*"]
                        read.extend((doc["metadata"]["name"], name, key) for key in keys)
    assert read, "no pod reads the database operator's secret: the check would prove nothing"
    for pod, secret, key in read:
        assert secret in generated, f"{pod} reads {secret}, which CloudNativePG does not create"
        assert key == "*" or key in generated[secret], f"{pod} reads {secret}/{key}: no such key"


@pytest.mark.parametrize("target", TARGETS)
def test_every_revision_timeout_is_one_knative_accepts(target: str) -> None:
    timeouts = {
        s["metadata"]["name"]: s["spec"]["template"]["spec"].get("timeoutSeconds", 300)
        for s in knative_services(build(target))
    }
    assert "purge" in timeouts, timeouts
    too_long = {name: t for name, t in timeouts.items() if t > KNATIVE_MAX_TIMEOUT_S}
    assert not too_long, f"above max-revision-timeout-seconds {KNATIVE_MAX_TIMEOUT_S}: {too_long}"


def test_a_function_cannot_declare_a_timeout_knative_refuses(tmp_path: Path) -> None:
    declared = (REPO / "functions" / "purge" / "function.yaml").read_text()
    folder = tmp_path / "purge"
    folder.mkdir()
    (folder / "function.yaml").write_text(declared.replace("timeout_s: 600", "timeout_s: 3600"))
    with pytest.raises(ConfigurationError, match="timeout_s"):
        load(folder)


def test_the_purge_stops_starting_tenants_well_before_its_timeout() -> None:
    """A tick starts no tenant after ``retention.budget_s``: one tenant's run and the audit-chain
    checks must still fit before Knative cuts the request."""
    (purge,) = [spec for spec in discover(REPO / "functions") if spec.name == "purge"]
    assert Settings().retention.budget_s <= purge.timeout_s - 60, purge.timeout_s


def test_a_release_pins_every_visitlens_image_by_digest_with_kustomize(tmp_path: Path) -> None:
    """A release sets the images in its own overlay (`images:` with a digest, docs/deploy.md),
    not by re-rendering: kustomize's image transformer must reach every container that runs a
    visitlens image — the Knative Services' too, which are custom resources."""
    digest = "sha256:" + "0" * 64
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{os.path.relpath(REPO / 'charts' / 'overlays' / 'prod', tmp_path)}]\n"
        "images:\n"
        f"  - {{name: ghcr.io/visitlens/functions, newName: registry.example/vl/functions, digest: '{digest}'}}\n"
        f"  - {{name: ghcr.io/visitlens/web, newName: registry.example/vl/web, digest: '{digest}'}}\n"
    )
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True
    )
    images = re.findall(r"image: (\S+)", built.stdout)
    ours = [i for i in images if "visitlens" in i or "registry.example" in i]
    assert len(ours) >= 11, images  # 8 functions, the bridge, the migration, the console
    assert all(i.startswith("registry.example/vl/") and i.endswith(digest) for i in ours), ours


@pytest.mark.parametrize("target", TARGETS)
def test_every_always_on_service_has_a_disruption_budget_that_selects_its_pods(
    target: str,
) -> None:
    """A drain must not take every pod of an always-on service at once: a PodDisruptionBudget
    selects the pods Knative makes for it (the template's labels plus
    ``serving.knative.dev/service``), and it allows a drain to go on (never ``minAvailable``
    equal to the replicas: that blocks node maintenance for ever)."""
    docs = build(target)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for service in knative_services(docs):
        annotations = service["spec"]["template"].get("metadata", {}).get("annotations", {})
        if int(annotations.get("autoscaling.knative.dev/min-scale", "0")) < 1:
            continue
        name = service["metadata"]["name"]
        labels = {
            **service["spec"]["template"].get("metadata", {}).get("labels", {}),
            "serving.knative.dev/service": name,
        }
        selecting = [
            b for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]  # fmt: skip
        assert selecting, f"no PodDisruptionBudget selects the pods of {name}"
        assert all("maxUnavailable" in b["spec"] for b in selecting), selecting
    if target == "overlays/prod":
        assert any(b["metadata"]["name"] == "visitlens-milvus" for b in budgets)
        (cluster,) = [d for d in docs if d["kind"] == "Cluster"]
        assert cluster["spec"]["enablePDB"] is True


def test_the_runbook_enables_eventing_oidc() -> None:
    """The functions refuse deliveries without an OIDC token (ADR 0010); Knative Eventing sends
    one only with its ``authentication-oidc`` feature flag on (knative/docs, sender identity).
    The install order must turn it on before anything delivers — it did not, and every Trigger
    and PingSource delivery of a first install was a 401."""
    runbook = (REPO / "docs" / "deploy.md").read_text()
    order = runbook[runbook.index("### Install order") :]
    order = order[: order.index("\n### ", 1)]
    first_step = order[: order.index("\n2. ")]
    assert "config-features" in first_step and '"authentication-oidc":"enabled"' in first_step
    assert "knative-eventing" in first_step
