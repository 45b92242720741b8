"""`python -m visitlens_dev.bench`: run the benchmarks on a private embedded stack, print the figures
and write them to ``<out>/latest.json`` (and a dated copy); ``--record docs/benchmarks`` keeps the
latest results in the repository."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from visitlens.adapters.logs import configure
from visitlens.adapters.model_prep import prepare
from visitlens.config import Settings, load_settings
from visitlens_dev import faults
from visitlens_dev.bench import (
    accuracy,
    api,
    demographics,
    edge,
    openset,
    reports,
    scale,
    speed,
    storeday,
    throughput,
)
from visitlens_dev.bench.report import FIGURES, write_results
from visitlens_dev.stack.ephemeral import ephemeral_stack

BENCHMARKS: dict[str, Callable[[Settings], Coroutine[Any, Any, dict[str, Any]]]] = {
    "api": api.run,
    "accuracy": accuracy.run,
    "demographics": demographics.run,
    "edge": edge.run,
    "faults": faults.bench,
    "openset": openset.run,
    "reports": reports.run,
    "scale": scale.run,
    "speed": speed.run,
    "storeday": storeday.run,
    "throughput": throughput.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visitlens_dev.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument(
        "--record", type=Path, help="also write latest.json here (e.g. docs/benchmarks)"
    )
    args = parser.parse_args(argv)
    configure("WARNING")
    # An interrupted run still stops its private stack (the `with` blocks below run their exits).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = args.only or sorted(BENCHMARKS)
    results: dict[str, Any] = {}
    models_dir = load_settings().models_dir.resolve()
    if not (models_dir / "manifest.json").exists():
        prepare(models_dir)
    with (
        tempfile.TemporaryDirectory(prefix="visitlens-bench-") as tmp,
        ephemeral_stack(Path(tmp)) as stack,
    ):
        models = stack.models.model_copy(update={"dir": models_dir})
        settings = stack.model_copy(update={"models": models})
        for name in chosen:
            sys.stdout.write(f"== {name}\n")
            results[name] = asyncio.run(BENCHMARKS[name](settings))
            shown = {k: v for k, v in results[name].items() if k != FIGURES}
            sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    command = " ".join(
        ["python -m visitlens_dev.bench", *(argv if argv is not None else sys.argv[1:])]
    )
    path = write_results(args.out, results, args.record, command)
    sys.stdout.write(f"results written to {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
