"""Who can reach whom under the rendered NetworkPolicies, as network-config-analyzer computes it.

NetworkPolicies select pods by label, and the pods here are made by operators (Knative,
CloudNativePG, the Milvus and MinIO operators) from custom resources: nothing in ``charts/`` is a
Pod. :func:`pods` stands one in for each pod the rendered resources make, with the labels its
operator gives it, beside the platform's own pods (Knative's activator, autoscaler and Kourier
gateway, the Broker's ingress and filter, Prometheus, kube-dns, the operators). network-config-
analyzer (``nca``, PyPI) then computes the connectivity of every pair; :func:`analyze` keeps the
connections that touch the ``visitlens`` namespace, and :func:`expected` expands the table of
who must reach whom (``expected-connectivity.yaml``) into the same shape for comparison.

The labels of pods made by operators are the operators' documented ones (cited beside each); a
cluster where they differ is what no offline check can see (``docs/deploy.md``).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "visitlens"
Connectivity = dict[tuple[str, str], frozenset[tuple[str, int]]]
ALL = frozenset({("*", 0)})

# Pods of the platform, by namespace, with the labels their installs give them.
PLATFORM: dict[str, dict[str, dict[str, str]]] = {
    "knative-serving": {"activator": {"app": "activator"}, "autoscaler": {"app": "autoscaler"}},
    "kourier-system": {"3scale-kourier-gateway": {"app": "3scale-kourier-gateway"}},
    "knative-eventing": {
        "mt-broker-ingress": {"eventing.knative.dev/brokerRole": "ingress"},
        "mt-broker-filter": {"eventing.knative.dev/brokerRole": "filter"},
        "pingsource-mt-adapter": {"eventing.knative.dev/source": "ping-source-controller"},
    },
    "monitoring": {"prometheus": {"app.kubernetes.io/name": "prometheus"}},
    "kube-system": {"kube-dns": {"k8s-app": "kube-dns"}},
    "cnpg-system": {"cnpg-controller-manager": {"app.kubernetes.io/name": "cloudnative-pg"}},
    "milvus-operator": {"milvus-operator": {"app.kubernetes.io/name": "milvus-operator"}},
    "minio-operator": {"minio-operator": {"app.kubernetes.io/name": "operator"}},
}
# The namespace of the ingress gateway carries the label the MinIO policy admits (deploy.md):
# edges upload snapshots to presigned URLs through it.
NAMESPACE_LABELS = {"kourier-system": {"visitlens.dev/ingress": "true"}}


def _template_labels(doc: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = doc["spec"]["template"].get("metadata", {}).get("labels", {})
    return dict(labels)


def pods(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """A stand-in for every pod the rendered resources make in the namespace, by name."""
    made: dict[str, dict[str, str]] = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "Service" and doc["apiVersion"].startswith("serving.knative.dev/"):
            # Knative adds serving.knative.dev/service (and revision labels) to the template's
            made[name] = {**_template_labels(doc), "serving.knative.dev/service": name}
        elif kind in ("Job", "Deployment", "StatefulSet"):
            made[name] = _template_labels(doc)
        elif kind == "Cluster" and doc["apiVersion"].startswith("postgresql.cnpg.io/"):
            # CloudNativePG labels every instance cnpg.io/cluster=<cluster> ("Labels and
            # annotations" in its docs)
            made[f"{name}-1"] = {"cnpg.io/cluster": name, "cnpg.io/instanceRole": "primary"}
        elif kind == "Milvus":
            # milvus-operator: its pods carry app.kubernetes.io/instance=<name>; the in-cluster
            # etcd it installs (Bitnami's chart, release <name>-etcd) and, in cluster mode, the
            # Pulsar message queue (Apache's chart, release <name>-pulsar) carry their charts'.
            made[f"{name}-milvus"] = {
                "app.kubernetes.io/instance": name, "app.kubernetes.io/name": "milvus"
            }  # fmt: skip
            made[f"{name}-etcd-0"] = {
                "app.kubernetes.io/instance": f"{name}-etcd", "app.kubernetes.io/name": "etcd"
            }  # fmt: skip
            if doc["spec"].get("mode") == "cluster":
                made[f"{name}-pulsar-broker-0"] = {
                    "app": "pulsar", "release": f"{name}-pulsar", "component": "broker"
                }  # fmt: skip
        elif kind == "Tenant" and doc["apiVersion"].startswith("minio.min.io/"):
            # the MinIO operator labels a tenant's pods v1.min.io/tenant=<tenant>
            made[f"{name}-pool-0-0"] = {"v1.min.io/tenant": name}
    return made


def _pod_list(made: dict[str, dict[str, str]]) -> dict[str, Any]:
    items = []
    everywhere = {NAMESPACE: made} | PLATFORM
    for namespace, named in everywhere.items():
        for name, labels in named.items():
            items.append({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"containers": [{"name": "main", "image": "stand-in"}]},
            })  # fmt: skip
    return {"apiVersion": "v1", "kind": "PodList", "items": items}


def _namespace_list() -> dict[str, Any]:
    items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {
            "kubernetes.io/metadata.name": namespace, **NAMESPACE_LABELS.get(namespace, {})}}}
        for namespace in [NAMESPACE, *PLATFORM]
    ]  # fmt: skip
    return {"apiVersion": "v1", "kind": "NamespaceList", "items": items}


_LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conn>.+)$")
_GROUP = re.compile(r"\{protocols:(?P<protocols>[A-Z, ]+)(?:,dst_ports:(?P<ports>[0-9,-]+))?\}")


def _ports(text: str) -> frozenset[tuple[str, int]]:
    """nca's ``{protocols:TCP, UDP,dst_ports:53,8012-8013}`` (groups joined by ``;``)."""
    if text.strip() == "All connections":
        return ALL
    found: set[tuple[str, int]] = set()
    for group in _GROUP.finditer(text):
        protocols = [p.strip() for p in group["protocols"].split(",")]
        ports: list[int] = []
        for part in (group["ports"] or "0").split(","):
            low, _, high = part.partition("-")
            ports.extend(range(int(low), int(high or low) + 1))
        found |= {(protocol, port) for protocol in protocols for port in ports}
    if not found:
        raise ValueError(f"an nca connection this parser does not know: {text!r}")
    return frozenset(found)


def _endpoint(text: str) -> str:
    return text.removesuffix("[Pod]")


def analyze(docs: list[dict[str, Any]], nca: Path) -> Connectivity:
    """nca's connectivity of the rendered policies over :func:`pods`: every allowed connection
    with an end in the namespace, as ``(source, destination) -> {(protocol, port)}``."""
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "policies.yaml").write_text(yaml.safe_dump_all(policies))
        (work / "pods.yaml").write_text(yaml.safe_dump(_pod_list(pods(docs))))
        (work / "namespaces.yaml").write_text(yaml.safe_dump(_namespace_list()))
        run = subprocess.run(  # noqa: S603 - the pinned analyser, on files written here
            [str(nca), "--connectivity", str(work / "policies.yaml"),
             "--pod_list", str(work / "pods.yaml"), "--ns_list", str(work / "namespaces.yaml"),
             "--output_format", "txt_no_fw_rules", "--file_out", str(work / "out.txt")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        output = work / "out.txt"
        if not output.exists():
            raise RuntimeError(f"nca failed ({run.returncode}): {run.stdout[-2000:]}")
        lines = output.read_text().splitlines()
    found: Connectivity = {}
    for line in lines:
        match = _LINE.match(line.strip())
        if match is None:
            continue
        src, dst = _endpoint(match["src"]), _endpoint(match["dst"])
        if src.startswith(f"{NAMESPACE}/") or dst.startswith(f"{NAMESPACE}/"):
            found[(src, dst)] = _ports(match["conn"])
    return found


def _expand(name: str, groups: dict[str, list[str]], present: set[str], strict: bool) -> list[str]:
    if name in groups:
        return [e for member in groups[name] for e in _expand(member, groups, present, strict)]
    if re.match(r"^[0-9.]+-[0-9.]+$", name):  # an address range, as nca prints it
        return [name]
    if "/" not in name:
        name = f"{NAMESPACE}/{name}"
    if name.endswith("/*"):  # a whole namespace: every pod of it
        prefix = name[:-1]
        return sorted(p for p in present if p.startswith(prefix))
    if name not in present and strict:
        raise ValueError(f"{name} is no pod of this rendering (a stale expected table?)")
    return [name] if name in present else []


def _spec_ports(text: str) -> frozenset[tuple[str, int]]:
    """``TCP 5432``, ``TCP 8012-8013,8022``, ``TCP,UDP 53`` or ``all``."""
    if text == "all":
        return ALL
    protocols, _, ports = text.partition(" ")
    return _ports(f"{{protocols:{protocols},dst_ports:{ports}}}")


def expected(table: Path, docs: list[dict[str, Any]]) -> Connectivity:
    """The table's flows over the same pods: ``groups`` name sets of endpoints, each flow allows
    ``from`` x ``to`` on ``ports``. A flow naming a pod the rendering does not make is an error
    (a stale table) unless it is marked ``when_present``."""
    spec = yaml.safe_load(table.read_text())
    present = {f"{NAMESPACE}/{n}" for n in pods(docs)} | {
        f"{ns}/{n}" for ns, named in PLATFORM.items() for n in named
    }
    groups: dict[str, list[str]] = spec["groups"]
    wanted: Connectivity = {}
    for flow in spec["flows"]:
        strict = not flow.get("when_present", False)
        sources = [e for name in flow["from"] for e in _expand(name, groups, present, strict)]
        targets = [e for name in flow["to"] for e in _expand(name, groups, present, strict)]
        if not sources or not targets:
            if strict:
                raise ValueError(f"a flow of {table.name} reaches no pod: {flow}")
            continue
        for src in sources:
            for dst in targets:
                if src != dst:
                    key = (src, dst)
                    wanted[key] = wanted.get(key, frozenset()) | _spec_ports(str(flow["ports"]))
    return wanted
