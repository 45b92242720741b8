"""`make e2e` inside `make test`: a synthetic RTSP camera plays a scripted clip (a visitor twice,
a staff member once) through the edge worker, the functions, PostgreSQL/Milvus/S3, the report API
and the console in Chromium; it passes only if exactly the scripted visits are counted, the
functions' own decision counters agree and the console shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)
def test_the_scripted_clip_is_counted_end_to_end(tmp_path: Path) -> None:
    artifacts = tmp_path / "e2e"
    run = subprocess.run(
        [sys.executable, "-m", "visitlens.cli", "e2e", "--artifacts", str(artifacts)],
        cwd=REPO, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((artifacts / "summary.json").read_text())
    assert summary["counted"] == summary["scripted"] == {
        "visits": 2, "new_visits": 1, "returning_visits": 1, "unique_visitors": 1,
    }  # fmt: skip
    assert summary["console"] == "shown" and (artifacts / "console.png").stat().st_size > 10_000
    assert summary["metrics"]["returning_customer"] >= 1
    report = json.loads((artifacts / "report.json").read_text())
    assert report["totals"]["visits"] == 2 and report["freshness"]["pending_hours"] == 0
    for artifact in ("logs/edge.log", "logs/fn-ingest.log", "logs/fn-aggregate.log",
                     "metrics/ingest.txt"):  # fmt: skip
        assert (artifacts / artifact).stat().st_size > 0, artifact
