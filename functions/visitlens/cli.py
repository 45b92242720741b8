"""`visitlens`: the operator's command line (migrations, bootstrap, keys, models, audit, bridge)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from importlib.metadata import entry_points

from visitlens.adapters.logs import configure
from visitlens.config import Settings, load_settings
from visitlens.errors import VisitlensError

logger = logging.getLogger("visitlens")
COMMANDS = "visitlens.commands"
"""The entry-point group through which other distributions add subcommands."""


def out(text: str = "") -> None:
    """Command output for the operator (stdout), as distinct from logs (stderr)."""
    sys.stdout.write(text + "\n")


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.db import migrate
    from visitlens.adapters.endpoints import database_dsns

    owner_dsn, _ = database_dsns(settings)
    if args.action == "migrate":
        migrate.upgrade(owner_dsn, settings, args.revision)
        out(f"database migrated to {args.revision}")
    else:
        migrate.downgrade(owner_dsn, settings, args.revision)
        out(f"database downgraded to {args.revision}")
    return 0


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.wiring import create_system_admin

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass()
    user_id = asyncio.run(create_system_admin(settings, args.email, password))
    out(f"system admin {args.email} created (id {user_id})")
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.jwt_keys import generate_key

    kid = args.kid or time.strftime("k%Y%m%d%H%M%S")
    path = generate_key(settings.keys_dir, kid)
    out(f"new signing key {kid} at {path}; restart the functions to sign with it")
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.adapters.model_prep import prepare, verified_path

    if args.action == "prepare":
        for p in prepare(settings.models_dir):
            out(f"{p.model_id:<15} {p.file:<32} sha256 {p.sha256}  (from {p.source_sha256[:12]}…)")
        out(f"manifest: {settings.models_dir / 'manifest.json'}")
        return 0
    for model_id in ("yunet-2023mar", "sface-2021dec"):
        path, _ = verified_path(settings.models_dir, model_id)
        out(f"{model_id:<15} ok  {path}")
    return 0


def cmd_openapi(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.http.surface import openapi_document

    out(json.dumps(openapi_document(), indent=2, sort_keys=True))
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from visitlens.wiring import verify_audit_chains

    reports = asyncio.run(verify_audit_chains(settings))
    bad = 0
    for report in reports:
        state = "OK" if not report.problems else f"{len(report.problems)} PROBLEMS"
        out(
            f"{report.chain:<36} {report.rows:>7} rows  head seq {report.head_seq} "
            f"{report.head_hash[:16] or '-'}  {state}"
            + (f"  ({report.unchained} written before the chain)" if report.unchained else "")
        )
        for problem in report.problems:
            out(f"    {problem}")
        bad += len(report.problems)
    return 1 if bad else 0


def cmd_minio_bridge(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from visitlens.adapters.minio_bridge import create_app

    events = settings.events
    if not events.sink or events.minio_token is None:
        out("K_SINK and VISITLENS_EVENTS__MINIO_TOKEN must be set")
        return 2
    uvicorn.run(create_app(events), host=args.host, port=args.port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="visitlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

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
    # More commands where the development tooling is installed (visitlens-dev: stack, dev,
    # functions, demo, e2e, deploy): never in a product image.
    for plugin in entry_points(group=COMMANDS):
        plugin.load()(sub)
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
