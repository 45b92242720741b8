"""Every dependency restarted under load (visitlens_dev.faults): PostgreSQL, Milvus, the object
store, Redis and the local gateway, each stopped for 8 s while eight edge uploaders post unique
passes. Nothing lost, nothing doubled, only 503s with Retry-After meanwhile (never another 5xx),
readiness naming the dependency while it is down, counting again within 30 s of its return with
no function restarted, and every camera's queue drained afterwards. On a private stack of its own:
it stops services the other suites share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from visitlens_dev import faults
from visitlens_dev.stack.ephemeral import ephemeral_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[dict[str, Any]]:
    with ephemeral_stack(tmp_path_factory.mktemp("fault-stack")) as settings:
        yield faults.run(settings, models_dir, tmp_path_factory.mktemp("fault-work"))


def test_nothing_is_lost_or_doubled_and_every_queue_drains(report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert totals["passes"] > 500, totals
    assert (totals["lost"], totals["doubled"], totals["unknown"]) == (0, 0, 0), totals
    assert (totals["left_in_queues"], totals["dead_lettered"]) == (0, 0), totals


@pytest.mark.parametrize("dependency", faults.DEPENDENCIES)
def test_an_outage_is_503_with_retry_after_and_recovers_within_30_s(
    report: dict[str, Any], dependency: str
) -> None:
    outage = report[dependency]
    assert outage["passes_queued"] > 0 and (outage["lost"], outage["doubled"]) == (0, 0), outage
    assert outage["server_errors_other_than_503"] == 0, outage
    assert outage["503_without_retry_after"] == 0, outage
    assert outage["recovery_s"] is not None and outage["recovery_s"] <= 30, outage


@pytest.mark.parametrize("dependency", sorted(faults.READINESS))
def test_readiness_names_the_dependency_while_it_is_down(
    report: dict[str, Any], dependency: str
) -> None:
    _, check, state = faults.READINESS[dependency]
    readiness = report[dependency]["readiness"]
    assert readiness["checks"][check].startswith(state), readiness
    assert readiness["http_status"] == (200 if state == "degraded" else 503), readiness
    others = {k: v for k, v in readiness["checks"].items() if k != check}
    assert set(others.values()) == {"ok"}, readiness


def test_no_answer_anywhere_was_a_server_error_other_than_503(report: dict[str, Any]) -> None:
    totals = report["totals"]
    assert totals["server_errors_other_than_503"] == 0, totals
    assert totals["503_without_retry_after"] == 0, totals
