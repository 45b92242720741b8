"""Timing statistics and the machine-readable results file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from visitlens import __version__


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def pct(p: float) -> float:
        index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return round(ordered[index], 3)

    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "min_ms": round(ordered[0], 3),
    }


async def time_async(fn: Callable[[], Awaitable[Any]], runs: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - informational only
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "visitlens": __version__,
        "commit": commit,
    }


FIGURES = "_figures"
"""A benchmark's result may carry plots under this key ({file name: PNG bytes}): written beside
the results (and the recorded copy), never into the JSON."""


def write_results(
    out_dir: Path, results: dict[str, Any], record_dir: Path | None, command: str = ""
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC)
    host = machine()
    for result in results.values():
        figures = result.pop(FIGURES, {}) if isinstance(result, dict) else {}
        for name, data in figures.items():
            for directory in (out_dir, record_dir):
                if directory is not None:
                    directory.mkdir(parents=True, exist_ok=True)
                    (directory / name).write_bytes(data)
        if isinstance(result, dict):
            # Every block says where it comes from: a partial run keeps other blocks' own.
            result.setdefault(
                "provenance",
                {
                    "commit": host["commit"],
                    "date": stamp.isoformat(timespec="seconds"),
                    "command": command,
                    "cpu": host["cpu"],
                    "cores": host["cores"],
                },
            )
    document = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": host,
        "results": results,
    }
    path = out_dir / f"bench-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    if record_dir is not None:
        # A partial run (--only) updates its own benchmarks and keeps the others' last figures.
        record_dir.mkdir(parents=True, exist_ok=True)
        recorded = record_dir / "latest.json"
        merged = dict(document)
        if recorded.exists():
            previous = json.loads(recorded.read_text())
            merged["results"] = {**previous.get("results", {}), **results}
            merged["dates"] = {
                **previous.get(
                    "dates", dict.fromkeys(previous.get("results", {}), previous.get("date"))
                ),
                **dict.fromkeys(results, document["date"]),
            }
        recorded.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return path
