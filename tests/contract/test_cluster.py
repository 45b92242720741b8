"""The deployable cluster, validated offline: the dev and prod overlays (application, monitoring,
PostgreSQL, Milvus, MinIO, migrations, network policies) build with kustomize; every document
passes its schema — Kubernetes' own for core kinds, the operators' CRD schemas shipped in
charts/schemas for the rest (a kind without a schema fails); every container runs non-root on a
read-only root with limits; long-running ones have probes; the namespace enforces Pod Security
"restricted"; traffic is denied unless a policy names it; only the migrate Job sees the owner DSN."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from visitlens_dev.stack.milvus_server import SERVER_SETTINGS

CHARTS = REPO / "charts"
SCHEMAS = CHARTS / "schemas"
CORE_GROUPS = {"", "apps", "batch", "networking.k8s.io", "policy", "rbac.authorization.k8s.io"}
BUILDS = ["overlays/dev", "overlays/prod", "visitlens", "monitoring"]


@cache
def build(target: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing (its kustomize builds the deployment offline)")
    built = subprocess.run(
        [kubectl, "kustomize", str(CHARTS / target)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def group_version(doc: dict[str, Any]) -> tuple[str, str]:
    group, _, version = doc["apiVersion"].rpartition("/")
    return group, version


@pytest.mark.parametrize("target", BUILDS)
def test_every_document_passes_its_schema(target: str) -> None:
    k8s = kubernetes_validate.latest_version()
    for doc in build(target):
        group, version = group_version(doc)
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if group in CORE_GROUPS:
            kubernetes_validate.validate(doc, k8s, strict=True)
            continue
        path = SCHEMAS / group / f"{doc['kind']}-{version}.json"
        assert path.exists(), f"{name}: no schema for {doc['apiVersion']} {doc['kind']}"
        schema = json.loads(path.read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        assert not errors, f"{name}: " + "; ".join(e.message for e in errors[:5])


def test_a_wrong_field_is_caught() -> None:
    """The CRD schemas are not decoration: a misspelt or mistyped field fails."""
    cluster = next(d for d in build("overlays/prod") if d["kind"] == "Cluster")
    schema = json.loads((SCHEMAS / "postgresql.cnpg.io" / "Cluster-v1.json").read_text())
    broken = json.loads(json.dumps(cluster))
    broken["spec"]["instances"] = "three"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] == "Job":
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev"):
        return [doc["spec"]["template"]["spec"]]
    return []


@pytest.mark.parametrize("target", ["overlays/dev", "overlays/prod"])
def test_containers_are_locked_down(target: str) -> None:
    docs = build(target)
    checked = 0
    for doc in docs:
        for spec in pod_specs(doc):
            for container in spec["containers"]:
                where = f"{doc['kind']}/{doc['metadata']['name']}/{container['name']}"
                security = {**spec.get("securityContext", {}), **container["securityContext"]}
                assert security["runAsNonRoot"] is True, where
                assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
                assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], where
                assert security["seccompProfile"]["type"] == "RuntimeDefault", where
                assert container["resources"]["limits"]["memory"], where
                assert container["resources"]["requests"], where
                if doc["kind"] == "Service":  # long-running: probed
                    assert "readinessProbe" in container, where
                # secrets as files, never as environment variables
                assert not any("secretRef" in e for e in container.get("envFrom", [])), where
                checked += 1
    assert checked >= 10
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("target", ["overlays/dev", "overlays/prod"])
def test_default_deny_and_the_owner_dsn_only_in_the_migration(target: str) -> None:
    docs = build(target)
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny and "egress" not in deny
    # the data plane accepts the functions and its own, not the world
    for name in ("postgres", "milvus", "minio"):
        for rule in policies[name]["spec"]["ingress"]:
            assert rule.get("from"), f"{name}: an ingress rule without a source admits anyone"
    text = yaml.safe_dump_all(docs)
    owner_refs = [
        d["metadata"]["name"]
        for d in docs
        if "visitlens-pg-app" in yaml.safe_dump(d) and d["kind"] != "NetworkPolicy"
    ]
    assert owner_refs == ["visitlens-migrate"], owner_refs
    assert "VISITLENS_DATABASE__URL" not in yaml.safe_dump(
        [d for d in docs if d["kind"] == "Service"]
    )
    assert "restricted" in text


def test_prod_is_the_high_availability_profile() -> None:
    prod = {(d["kind"], d["metadata"]["name"]): d for d in build("overlays/prod")}
    dev = {(d["kind"], d["metadata"]["name"]): d for d in build("overlays/dev")}
    assert prod[("Cluster", "visitlens-pg")]["spec"]["instances"] == 3
    assert dev[("Cluster", "visitlens-pg")]["spec"]["instances"] == 1
    assert prod[("Milvus", "visitlens-milvus")]["spec"]["mode"] == "cluster"
    assert dev[("Milvus", "visitlens-milvus")]["spec"]["mode"] == "standalone"
    assert prod[("Tenant", "minio")]["spec"]["pools"][0]["servers"] == 4
    ingest = prod[("Service", "ingest")]["spec"]["template"]["metadata"]["annotations"]
    assert ingest["autoscaling.knative.dev/min-scale"] == "2"


def test_the_schemas_say_where_they_come_from() -> None:
    sources = (SCHEMAS / "SOURCES.md").read_text()
    for group in {p.parent.name for p in SCHEMAS.rglob("*.json")}:
        assert group in sources, group


def test_production_milvus_runs_with_the_benchmarked_settings() -> None:
    """The server the benchmarks measure departs from Milvus' defaults exactly as the chart's
    Milvus does, in both profiles."""
    for target in ("overlays/dev", "overlays/prod"):
        milvus = {(d["kind"], d["metadata"]["name"]): d for d in build(target)}[
            ("Milvus", "visitlens-milvus")
        ]
        for key, value in SERVER_SETTINGS.items():
            found: Any = milvus["spec"]["config"]
            for part in key.split("."):
                found = found[part]
            assert found == value, (target, key)
