"""``visitlens-edge`` (also ``python -m visitlens_edge``): run the worker, or check a config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from visitlens_edge.config import ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="visitlens-edge", description="visitlens edge worker: cameras → face.detected events"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("run", "run the worker until stopped (SIGTERM/SIGINT flush the queue)"),
        ("check-config", "validate the configuration and print it (secrets hidden)"),
    ):
        command = sub.add_parser(name, help=help_)
        command.add_argument(
            "--config", type=Path, default=None, help="YAML file (VISITLENS_EDGE_* env overrides)"
        )
    args = parser.parse_args(argv)
    try:
        settings = load(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    if args.command == "check-config":
        sys.stdout.write(settings.model_dump_json(indent=2) + "\n")
        return 0
    from visitlens_edge.supervisor import Supervisor

    return Supervisor(settings).run()


if __name__ == "__main__":
    raise SystemExit(main())
