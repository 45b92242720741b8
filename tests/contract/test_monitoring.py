"""The alerting rules and dashboards are checked by promtool: the rules parse, each alert fires on
a synthetic breach and stays quiet on normal series (charts/monitoring/rules/visitlens.test.yaml),
every dashboard panel's PromQL parses, the PrometheusRule carries exactly the rules file's groups,
and every metric they name is one a function or the edge worker really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

import visitlens.adapters.metrics  # noqa: F401 - registers the functions' metrics
from tests.conftest import REPO
from visitlens_edge.health import State, _Collector

MONITORING = REPO / "charts" / "monitoring"
RULES = MONITORING / "rules" / "visitlens.rules.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
NAME = re.compile(r"\b(visitlens_[a-z_]+)\b")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus (system-deps)")
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_the_rules_parse_and_their_unit_tests_pass() -> None:
    check = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = promtool("test", "rules", "visitlens.test.yaml", cwd=RULES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
              if "alert" in r]  # fmt: skip
    tests = (RULES.parent / "visitlens.test.yaml").read_text()
    for alert in alerts:  # every alert is exercised, firing at least once
        assert f"alertname: {alert}" in tests, alert


def test_the_prometheus_rule_carries_the_same_groups() -> None:
    operator = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def panel_exprs() -> list[str]:
    exprs = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            exprs += [t["expr"] for t in panel["targets"]]
    return exprs


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    exprs = panel_exprs()
    assert len(exprs) >= 20
    # Grafana's own interval variable is the only template in the queries
    records = [{"record": f"dashboard:panel_{n}", "expr": e.replace("$__rate_interval", "5m")}
               for n, e in enumerate(exprs)]  # fmt: skip
    (tmp_path / "panels.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": records}]})
    )
    check = promtool("check", "rules", "panels.yaml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def exported_names() -> set[str]:
    state = State(["entrance"])
    state.update({"kind": "camera", "camera": "entrance", "state": "running", "fps": 5.0})
    edge = generate_latest(_EdgeRegistry(state)).decode()
    text = generate_latest(REGISTRY).decode() + edge
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, re.M)} | set(
        re.findall(r"^(visitlens_[a-z_]+)", text, re.M)
    )


class _EdgeRegistry:
    def __init__(self, state: State) -> None:
        self._collector = _Collector(state)

    def collect(self):  # type: ignore[no-untyped-def]
        return self._collector.collect()


def test_every_metric_named_is_exported() -> None:
    exported = exported_names()
    named = set(NAME.findall(RULES.read_text())) | {
        n for e in panel_exprs() for n in NAME.findall(e)
    }
    for name in sorted(named):
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert name in exported or base in exported, f"{name} is not exported by anything"
    # what the database's exporter computes: cnpg_<query>_<column> of our custom queries
    database = yaml.safe_load(
        yaml.safe_load((REPO / "charts/components/postgres/metrics.yaml").read_text())["data"][
            "queries"
        ]
    )
    from_database = {
        f"cnpg_{query}_{column}"
        for query, spec in database.items()
        for metric in spec["metrics"]
        for column in metric
    }
    cnpg_named = set(re.findall(r"\b(cnpg_visitlens_[a-z_]+)\b", RULES.read_text()))
    cnpg_named |= {n for e in panel_exprs() for n in re.findall(r"\b(cnpg_visitlens_[a-z_]+)\b", e)}
    cnpg_named = {n for n in cnpg_named if not n.endswith("_")}  # "cnpg_visitlens_retention_*"
    assert {"cnpg_visitlens_retention_oldest_run_age_seconds"} <= cnpg_named
    assert cnpg_named <= from_database, cnpg_named - from_database
