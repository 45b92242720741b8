"""`visitlens`: the operator's command line (stack, migrations, bootstrap, keys, dev runner, demo)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from pathlib import Path

from visitlens.config import Settings, load_settings
from visitlens.errors import VisitlensError
from visitlens.logs import configure

logger = logging.getLogger("visitlens")


def _out(text: str = "") -> None:
    """Command output for the operator (stdout), as distinct from logs (stderr)."""
    sys.stdout.write(text + "\n")


def cmd_stack(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.endpoints import resolve
    from visitlens.stack import manager

    if args.action == "up":
        started = time.monotonic()
        manager.up(settings)
        _out(f"stack up in {time.monotonic() - started:.1f}s (data: {settings.data_dir})")
        args.action = "status"
    if args.action == "down":
        stopped = manager.down(settings)
        _out(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.action == "env":
        for key, value in resolve(settings).environment().items():
            _out(f"export {key}='{value}'")
        return 0
    statuses = manager.status(settings)
    for s in statuses:
        _out(f"{s.name:<9} {s.mode:<9} {'healthy' if s.healthy else 'DOWN':<8} {s.detail}")
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.endpoints import database_dsns
    from visitlens.db import migrate

    owner_dsn, _ = database_dsns(settings)
    if args.action == "migrate":
        migrate.upgrade(owner_dsn, settings, args.revision)
        _out(f"database migrated to {args.revision}")
    else:
        migrate.downgrade(owner_dsn, settings, args.revision)
        _out(f"database downgraded to {args.revision}")
    return 0


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.wiring import create_system_admin

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    user_id = asyncio.run(create_system_admin(settings, args.email, password))
    _out(f"system admin {args.email} created (id {user_id})")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.jwt_keys import generate_key

    kid = args.kid or time.strftime("k%Y%m%d%H%M%S")
    path = generate_key(settings.keys_dir, kid)
    _out(f"new signing key {kid} at {path}; restart the functions to sign with it")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.model_prep import prepare, verified_path

    if args.action == "prepare":
        for p in prepare(settings.models_dir):
            _out(f"{p.model_id:<15} {p.file:<32} sha256 {p.sha256}  (from {p.source_sha256[:12]}…)")
        _out(f"manifest: {settings.models_dir / 'manifest.json'}")
        return 0
    for model_id in ("yunet-2023mar", "sface-2021dec"):
        path, _ = verified_path(settings.models_dir, model_id)
        _out(f"{model_id:<15} ok  {path}")
    return 0


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.http.surface import openapi_document

    _out(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.runtime.runner import run_dev

    run_dev(settings)
    return 0


def cmd_functions(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.runtime.spec import discover

    for spec in discover():
        kinds = ", ".join(t.kind for t in spec.triggers)
        _out(f"{spec.name:<14} {spec.signature:<10} {kinds}")
    return 0


def cmd_e2e(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.e2e import run_e2e

    return run_e2e(args.artifacts.resolve())


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.demo import run_demo

    return run_demo(settings)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.wiring import verify_audit_chains

    reports = asyncio.run(verify_audit_chains(settings))
    bad = 0
    for report in reports:
        state = "OK" if not report.problems else f"{len(report.problems)} PROBLEMS"
        _out(
            f"{report.chain:<36} {report.rows:>7} rows  head seq {report.head_seq} "
            f"{report.head_hash[:16] or '-'}  {state}"
            + (f"  ({report.unchained} written before the chain)" if report.unchained else "")
        )
        for problem in report.problems:
            _out(f"    {problem}")
        bad += len(report.problems)
    return 1 if bad else 0


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from visitlens.deploy.render import IMAGE, write
    from visitlens.runtime.spec import FUNCTIONS_DIR, discover

    root = Path(FUNCTIONS_DIR).parent
    for path in write(root, discover(), args.image or IMAGE):
        _out(f"wrote {path.relative_to(root)}")
    return 0


def cmd_minio_bridge(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from visitlens.http.minio_bridge import create_app

    events = settings.events
    if not events.sink or events.minio_token is None:
        _out("K_SINK and VISITLENS_EVENTS__MINIO_TOKEN must be set")
        return 2
    uvicorn.run(create_app(events), host=args.host, port=args.port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visitlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="the embedded PostgreSQL, Milvus Lite and S3")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.set_defaults(func=cmd_stack)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["migrate", "downgrade"])
    db.add_argument("revision", nargs="?", default="head")
    db.set_defaults(func=cmd_db)

    admin = sub.add_parser("create-system-admin", help="bootstrap a system administrator")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    admin.set_defaults(func=cmd_admin)

    keys = sub.add_parser("rotate-signing-key", help="add a new JWT signing key (rotation)")
    keys.add_argument("--kid", help="key id (default: a timestamp)")
    keys.set_defaults(func=cmd_keys)

    models = sub.add_parser("models", help="prepare or verify the face models")
    models.add_argument("action", choices=["prepare", "verify"])
    models.set_defaults(func=cmd_models)

    deploy = sub.add_parser("deploy", help="deployment files from functions/*/function.yaml")
    deploy.add_argument("action", choices=["render"], help="write charts/visitlens and stack.yml")
    deploy.add_argument("--image", help="the functions' container image")
    deploy.set_defaults(func=cmd_deploy)

    bridge = sub.add_parser("minio-bridge", help="MinIO webhook → CloudEvents on K_SINK")
    bridge.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's listener
    bridge.add_argument("--port", type=int, default=8080)
    bridge.set_defaults(func=cmd_minio_bridge)

    audit = sub.add_parser("audit", help="the audit log")
    audit.add_argument("action", choices=["verify"], help="recompute every hash chain")
    audit.set_defaults(func=cmd_audit)

    sub.add_parser("openapi", help="print the API's OpenAPI document").set_defaults(
        func=cmd_openapi
    )
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        sys.stderr.write(f"invalid configuration:\n{exc}\n")
        return 2
    configure(settings.log_level, settings.log_format)
    try:
        code: int = args.func(args, settings)
    except VisitlensError as exc:
        logger.error("%s", exc.message)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
