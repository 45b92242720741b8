"""The embedded PostgreSQL 16 (+pgvector) from the pgserver wheel, and role/database bootstrap."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from visitlens.adapters.endpoints import embedded_dsn
from visitlens.config import Settings
from visitlens.errors import StackError

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
MAX_CONNECTIONS = 300
"""Connections the embedded server accepts. On one machine every function holds its own pool
(up to ``pool_max_size``, 10) and keeps idle connections for minutes after a burst: eight functions
already make 80 of PostgreSQL's default 100, and the console's report page, a demo's tools or a
second dev host on the same server would hit ``too many clients``."""


def start(settings: Settings) -> tuple[int, str]:
    """Start (or find running) the embedded server; return (postmaster pid, socket dir).

    As root pgserver runs postgres under its own system user and listens on a Unix socket only.
    """
    pgdata = (settings.data_dir / "postgres").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = _server(pgdata)
    # pgserver keeps one handle per data dir in this process and starts the server only when it
    # makes that handle: a server stopped since (the fault suite's outage) is started here
    with server._lock:  # pgserver's inter-process lock, as its own start takes it
        server.ensure_postgres_running()
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir) if info.socket_dir else str(pgdata)
    if _raise_connection_limit(socket_dir):
        # Stopped, then started again by pgserver's own start (its log file and socket options;
        # a `pg_ctl restart` would leave the server writing to pg_ctl's closed output pipe).
        _pg_ctl(pgdata, ["-w", "-m", "fast", "stop"])
        with server._lock:  # pgserver's inter-process lock, as its own start takes it
            server.ensure_postgres_running()
        info = server.get_postmaster_info()
        socket_dir = str(info.socket_dir) if info.socket_dir else str(pgdata)
    pid = int(info.pid) if info.pid else 0
    bootstrap(settings, socket_dir)
    return pid, socket_dir


def _server(pgdata: Path) -> Any:
    """Starts (or finds running) the server in ``pgdata``, logging to ``pgdata/log``."""
    import pgserver  # imported here: it is only needed where the embedded server is used

    try:
        return pgserver.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, OSError, AssertionError) as exc:
        raise StackError(f"embedded PostgreSQL failed to start in {pgdata}: {exc}") from exc


def _raise_connection_limit(socket_dir: str) -> bool:
    """Sets ``max_connections`` (once, in postgresql.auto.conf); True if a restart must apply it."""
    with psycopg.connect(embedded_dsn(socket_dir, SUPERUSER, "postgres"), autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
        if row is not None and int(row[0]) >= MAX_CONNECTIONS:
            return False
        conn.execute(sql.SQL("ALTER SYSTEM SET max_connections = {}").format(MAX_CONNECTIONS))
    logger.info("embedded PostgreSQL: max_connections %d (restarting once)", MAX_CONNECTIONS)
    return True


def _pg_ctl(pgdata: Path, args: list[str]) -> None:
    """pg_ctl as the system user that owns the data dir (pgserver's own user when run as root)."""
    from pgserver._commands import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None
    if user is not None:
        # the server's user must be able to reach its data dir (another process, e.g. a second
        # pytest session, may have closed a parent folder since)
        from pgserver.utils import ensure_prefix_permissions

        ensure_prefix_permissions(pgdata)
    try:
        pg_ctl(args, pgdata=pgdata, user=user)
    except subprocess.CalledProcessError as exc:
        raise StackError(f"pg_ctl {args[-1]} failed for {pgdata}: exit {exc.returncode}") from exc


def stop(settings: Settings) -> bool:
    """Stop the embedded server with pg_ctl (as the system user that owns the data dir)."""
    pgdata = (settings.data_dir / "postgres").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    _pg_ctl(pgdata, ["-w", "-m", "fast", "stop"])
    return True


def bootstrap(settings: Settings, socket_dir: str) -> None:
    """Create the owner role and the database it owns (idempotent). Needs the superuser."""
    db = settings.database
    with psycopg.connect(embedded_dsn(socket_dir, SUPERUSER, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db.owner_role,))
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS").format(
                    sql.Identifier(db.owner_role)
                )
            )
            logger.info("created owner role %s", db.owner_role)
        has_db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db.name,))
        if has_db.fetchone() is None:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db.name), sql.Identifier(db.owner_role)
                )
            )
            logger.info("created database %s", db.name)
    # pgvector is created by the superuser (CREATE EXTENSION vector needs it on PG16).
    with psycopg.connect(embedded_dsn(socket_dir, SUPERUSER, db.name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def healthy(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def socket_path_ok(path: Path) -> bool:
    """Unix socket paths are limited to ~107 bytes; pgserver moves the socket if longer."""
    return len(str(path / ".s.PGSQL.5432")) < 100
