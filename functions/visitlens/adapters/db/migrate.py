"""`visitlens db migrate`: create the runtime roles, then run Alembic migrations as the owner."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy.engine import make_url

from visitlens.config import Settings
from visitlens.errors import StackError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def auth_role(settings: Settings) -> str:
    """The NOLOGIN role that owns the pre-authentication look-up functions."""
    return f"{settings.database.app_role}_auth"


def ensure_roles(owner_dsn: str, settings: Settings) -> None:
    """Create or update the app role (LOGIN, no RLS bypass) and the auth role; idempotent.

    Runs as the owner, which needs CREATEROLE (the embedded stack grants it).
    """
    db = settings.database
    password = db.app_password.get_secret_value()
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        app = sql.Identifier(db.app_role)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (db.app_role,))
        if exists.fetchone() is None:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE"
                ).format(app)
            )
            logger.info("created app role %s", db.app_role)
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(app, sql.Literal(password)))
        auth = sql.Identifier(auth_role(settings))
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (auth_role(settings),))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(auth))
        # The owner must be a member to hand function ownership to the auth role.
        owner = make_url(owner_dsn).username or db.owner_role
        conn.execute(sql.SQL("GRANT {} TO {}").format(auth, sql.Identifier(owner)))
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database[0]), app)
        )


def alembic_config(owner_dsn: str, settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    url = make_url(owner_dsn).set(drivername="postgresql+psycopg")
    cfg.attributes["dsn"] = url
    cfg.attributes["app_role"] = settings.database.app_role
    cfg.attributes["auth_role"] = auth_role(settings)
    return cfg


def upgrade(owner_dsn: str, settings: Settings, revision: str = "head") -> None:
    if not owner_dsn:
        raise StackError("migrations need the owner DSN (DATABASE_URL or the embedded stack)")
    ensure_roles(owner_dsn, settings)
    command.upgrade(alembic_config(owner_dsn, settings), revision)


def downgrade(owner_dsn: str, settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(owner_dsn, settings), revision)
