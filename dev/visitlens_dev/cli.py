"""The development commands of `visitlens` (registered through the ``visitlens.commands`` entry
point when visitlens-dev is installed): the embedded stack, the local function host, the demos,
the end-to-end run and the deployment renderer."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from visitlens.cli import out
from visitlens.config import Settings


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.endpoints import resolve
    from visitlens_dev.stack import manager

    if args.action == "up":
        started = time.monotonic()
        manager.up(settings)
        out(f"stack up in {time.monotonic() - started:.1f}s (data: {settings.data_dir})")
        args.action = "status"
    if args.action == "down":
        stopped = manager.down(settings)
        out(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.action == "env":
        for key, value in resolve(settings).environment().items():
            out(f"export {key}='{value}'")
        return 0
    statuses = manager.status(settings)
    for s in statuses:
        out(f"{s.name:<9} {s.mode:<9} {'healthy' if s.healthy else 'DOWN':<8} {s.detail}")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens_dev.runtime.runner import run_dev

    run_dev(settings)
    return 0


def cmd_functions(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens_dev.runtime.spec import discover

    for spec in discover():
        kinds = ", ".join(t.kind for t in spec.triggers)
        out(f"{spec.name:<14} {spec.signature:<10} {kinds}")
    return 0


def cmd_e2e(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens_dev.e2e import run_e2e

    return run_e2e(args.artifacts.resolve())


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens_dev.demo import run_demo

    return run_demo(settings)


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens_dev.deploy.render import IMAGE, write
    from visitlens_dev.runtime.spec import FUNCTIONS_DIR, discover

    root = Path(FUNCTIONS_DIR).parent
    for path in write(root, discover(), args.image or IMAGE):
        out(f"wrote {path.relative_to(root)}")
    return 0


def register(sub: Any) -> None:
    """Adds the development subcommands to `visitlens`' parser."""
    stack = sub.add_parser("stack", help="the embedded PostgreSQL, Milvus Lite and S3")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.set_defaults(func=cmd_stack)

    deploy = sub.add_parser("deploy", help="deployment files from functions/*/function.yaml")
    deploy.add_argument("action", choices=["render"], help="write charts/visitlens and stack.yml")
    deploy.add_argument("--image", help="the functions' container image")
    deploy.set_defaults(func=cmd_deploy)

    sub.add_parser("functions", help="list functions and triggers").set_defaults(func=cmd_functions)
    sub.add_parser("dev", help="serve every function behind the local gateway").set_defaults(
        func=cmd_dev
    )
    sub.add_parser("demo", help="the main job on the embedded stack, end to end").set_defaults(
        func=cmd_demo
    )
    e2e = sub.add_parser(
        "e2e", help="RTSP camera -> edge -> functions -> reports -> console, artifacts kept"
    )
    e2e.add_argument("--artifacts", type=Path, default=Path("build/e2e"))
    e2e.set_defaults(func=cmd_e2e)
