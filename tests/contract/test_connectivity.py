"""The NetworkPolicies proven by a connectivity analysis, not by reading: network-config-analyzer
(PyPI ``network-config-analyzer``, installed by ``make test`` into its own tool environment: it
pins dependencies of its own) computes who can reach whom under each rendered overlay, over a
stand-in for every pod the operators make; the result must equal the table of who must reach whom
in ``charts/components/network-policies/expected-connectivity.yaml`` — nothing missing, nothing
extra."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.contract.test_cluster import build
from visitlens_dev.deploy.connectivity import ALL, analyze, expected

TABLE = REPO / "charts" / "components" / "network-policies" / "expected-connectivity.yaml"
NCA = Path(os.environ.get("VISITLENS_NCA", REPO / ".tools" / "nca" / "bin" / "nca"))


def describe(ports: frozenset[tuple[str, int]]) -> str:
    if ports == ALL:
        return "all"
    return ", ".join(f"{protocol} {port}" for protocol, port in sorted(ports))


@pytest.mark.parametrize("target", ["overlays/dev", "overlays/prod"])
def test_the_policies_allow_exactly_the_expected_flows(target: str) -> None:
    if not NCA.exists():
        pytest.fail(
            f"{NCA} is missing: `make tools` installs network-config-analyzer", pytrace=False
        )
    docs = build(target)
    found, wanted = analyze(docs, NCA), expected(TABLE, docs)
    assert wanted, "the table expands to nothing: the check would prove nothing"
    missing = {k: describe(v - found.get(k, frozenset())) for k, v in wanted.items()
               if not v <= found.get(k, frozenset()) and found.get(k) != ALL}  # fmt: skip
    extra = {k: describe(v - wanted.get(k, frozenset())) for k, v in found.items()
             if not v <= wanted.get(k, frozenset()) and wanted.get(k) != ALL}  # fmt: skip
    report = "\n".join(
        [f"missing {s} => {d}: {p}" for (s, d), p in sorted(missing.items())]
        + [f"extra   {s} => {d}: {p}" for (s, d), p in sorted(extra.items())]
    )
    assert not missing and not extra, report
