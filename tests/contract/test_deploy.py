"""The deployment files are generated from the one trigger declaration (function.yaml): the
committed files equal a fresh rendering, every trigger is there, kustomize builds the base, and
the Kubernetes core kinds pass their schemas."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import REPO
from visitlens.http.console import CONSOLE_HEADERS
from visitlens_dev.deploy.render import knative, nginx_conf, openfaas
from visitlens_dev.runtime.spec import (
    BucketTrigger,
    CloudEventTrigger,
    CronTrigger,
    HttpTrigger,
    discover,
)

CHART = REPO / "charts" / "visitlens"


def documents() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(CHART.rglob("*.yaml")):
        if path.name != "kustomization.yaml":
            out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_committed_files_are_the_rendering_of_function_yaml() -> None:
    specs = discover()
    for relative, text in knative(specs).items():
        committed = CHART / relative
        assert committed.read_text() == text, f"{relative} is stale: run `visitlens deploy render`"
    assert (REPO / "stack.yml").read_text() == openfaas(specs)
    assert (REPO / "web" / "nginx.conf").read_text() == nginx_conf()


def test_the_console_is_served_behind_the_same_route_with_its_headers() -> None:
    docs = documents()
    routes = next(d for d in docs if d["kind"] == "HTTPRoute")["spec"]["rules"]
    # `/` last: every function's prefix wins over the console's catch-all
    assert routes[-1]["matches"][0]["path"]["value"] == "/"
    assert routes[-1]["backendRefs"][0]["name"] == "web"
    web = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "web")
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    nginx = (REPO / "web" / "nginx.conf").read_text()
    for name, value in CONSOLE_HEADERS.items():  # in every location: nginx does not inherit them
        assert nginx.count(f'add_header {name} "{value}" always;') == 3
    assert "try_files /index.html =404;" in nginx  # deep links are the app
    assert yaml.safe_load((REPO / "stack.yml").read_text())["functions"]["web"]["image"].startswith(
        "ghcr.io/visitlens/web:"
    )


def test_every_trigger_is_deployed() -> None:
    docs = documents()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    routes = next(d for d in docs if d["kind"] == "HTTPRoute")["spec"]["rules"]
    prefixes = {r["matches"][0]["path"]["value"]: r["backendRefs"][0]["name"] for r in routes}
    stack = yaml.safe_load((REPO / "stack.yml").read_text())["functions"]
    for spec in discover():
        assert ("Service", spec.name) in kinds
        assert spec.name in stack
        assert (("SinkBinding", f"{spec.name}-sink") in kinds) == bool(spec.publishes)
        for index, trigger in enumerate(spec.triggers):
            if isinstance(trigger, CloudEventTrigger):
                trig = next(d for d in docs if d["metadata"]["name"] == f"{spec.name}-{index}")
                assert trig["spec"]["filter"]["attributes"] == trigger.filters
                assert trig["spec"]["subscriber"]["ref"]["name"] == spec.name
            elif isinstance(trigger, CronTrigger):
                ping = next(
                    d
                    for d in docs
                    if d["kind"] == "PingSource" and d["metadata"]["name"] == trigger.name
                )
                assert ping["spec"]["schedule"] == trigger.schedule
                assert stack[spec.name]["annotations"]["schedule"] == trigger.schedule
            elif isinstance(trigger, BucketTrigger):
                trig = next(d for d in docs if d["metadata"]["name"] == f"{spec.name}-{index}")
                text = str(trig["spec"]["filters"])
                assert f"minio:s3:::{trigger.bucket}" in text and trigger.prefix in text
            elif isinstance(trigger, HttpTrigger):
                for prefix in trigger.path_prefixes:
                    assert prefixes[prefix] == spec.name
    # longest prefix first, as the local gateway routes
    assert [len(p) for p in prefixes] == sorted((len(p) for p in prefixes), reverse=True)


def test_core_kinds_pass_the_kubernetes_schemas() -> None:
    version = kubernetes_validate.latest_version()
    checked = 0
    for doc in documents():
        if doc["apiVersion"] in ("v1", "apps/v1"):
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
    assert checked >= 2
    for doc in documents():  # the Knative kinds: the fields Knative requires
        if doc["kind"] == "Service" and doc["apiVersion"] == "serving.knative.dev/v1":
            container = doc["spec"]["template"]["spec"]["containers"][0]
            assert container["image"] and container["ports"][0]["containerPort"] == 8080
            assert container["securityContext"]["runAsNonRoot"] is True


def test_kustomize_builds_the_base(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        # No kubectl: the kustomization's resources must still all exist and parse.
        kustomization = yaml.safe_load((CHART / "kustomization.yaml").read_text())
        for resource in kustomization["resources"]:
            assert list(yaml.safe_load_all((CHART / resource).read_text()))
        return
    built = subprocess.run(
        [kubectl, "kustomize", str(CHART)], capture_output=True, text=True, check=False
    )
    assert built.returncode == 0, built.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(built.stdout) if d]
    assert kinds.count("PingSource") == 2 and "HTTPRoute" in kinds and "Broker" in kinds


@pytest.mark.parametrize("name", ["Dockerfile"])
def test_images_are_declared(name: str) -> None:
    for path in (REPO / "functions" / name, REPO / "edge" / name):
        text = path.read_text()
        assert "FROM python:3.11" in text and "USER" in text
