"""asyncpg pool, one per warm instance, and transactions scoped to one tenant by RLS settings."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from visitlens.config import DatabaseSettings
from visitlens.errors import Busy, Conflict, Forbidden, InvalidInput, TransientError, VisitlensError
from visitlens.ports import DbScope

logger = logging.getLogger(__name__)

__all__ = ["Connection", "Database", "DbScope", "Record"]

Record = asyncpg.Record
if TYPE_CHECKING:
    Connection: TypeAlias = PoolConnectionProxy[Record]
else:  # the stubs are generic, the runtime class is not
    Connection = PoolConnectionProxy


async def _init_connection(conn: asyncpg.Connection[Record]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _nothing_to_reset(conn: asyncpg.Connection[Record]) -> None:
    """A connection comes back to the pool with nothing of its last use left but an open
    transaction, which asyncpg rolls back before this runs: every statement of this adapter runs
    in :meth:`Database.transaction` (its settings and advisory locks are transaction-local) or as
    one autocommit look-up; nothing sets a session setting, takes a session lock, holds a cursor
    or listens (the live monitor's LISTEN has a connection of its own). So asyncpg's default
    reset (``RESET ALL``, ``CLOSE ALL``, ``UNLISTEN *``, advisory unlock: one more round trip per
    transaction, ~1 of 7 in an ingest unit) is skipped. ``test_rls`` checks that nothing of a
    tenant's transaction, committed or failed, reaches the next use of its connection."""


_UNAVAILABLE = (
    OSError,  # refused, reset, no socket
    asyncpg.PostgresConnectionError,  # incl. a connection closed in the middle of a statement
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,  # shutting down, starting up, terminated by an admin
)
"""What a restart or outage of the server raises: a 503, retried by the sender."""

UNIQUE_CONFLICTS: dict[str, tuple[str, str | None]] = {
    "users_email_key": ("a user with this e-mail address exists already", "body.email"),
    "tenants_slug_key": ("a tenant with this slug exists already", "body.slug"),
    "sites_tenant_id_name_key": ("a site with this name exists already", "body.name"),
    "cameras_site_id_name_key": ("this site has a camera with this name already", "body.name"),
}
"""A uniqueness conflict as the person who caused it understands it, with the field to fix;
never the database's constraint name (the console showed ``users_email_key``). Others: a
generic 409, the constraint only in the log."""


def _connection_lost(exc: asyncpg.InterfaceError) -> bool:
    """An interface error that only followed the loss of the connection (asyncpg raises one when
    a transaction is left on a connection the server closed), not a misuse of the driver."""
    if "connection is closed" in str(exc):  # asyncpg's words for a connection the server ended
        return True
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        if isinstance(cause, _UNAVAILABLE):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


@asynccontextmanager
async def _broken_ends(conn: Connection) -> AsyncIterator[None]:
    """A connection whose protocol state asyncpg reports broken (``InternalClientError``: seen
    when the server went away in the middle of an operation, the fault suite's PostgreSQL
    restart) is terminated, so that the pool opens a new one instead of handing it out again."""
    try:
        yield
    except asyncpg.InternalClientError:
        conn.terminate()
        raise


class Database:
    """Lazily creates its pool on first use (behind a lock) and reuses it across invocations."""

    def __init__(self, dsn: str, settings: DatabaseSettings) -> None:
        self._dsn = dsn
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    try:
                        self._pool = await asyncpg.create_pool(
                            self._dsn,
                            min_size=self._settings.pool_min_size,
                            max_size=self._settings.pool_max_size,
                            init=_init_connection,
                            reset=_nothing_to_reset,
                            server_settings={
                                "application_name": "visitlens",
                                "statement_timeout": str(self._settings.statement_timeout_ms),
                                # Short OLTP and report queries: JIT compilation costs more
                                # (100-300 ms) than it saves.
                                "jit": "off",
                                # Optional filters ("$1 IS NULL OR …") need a plan per call.
                                "plan_cache_mode": "force_custom_plan",
                            },
                        )
                    except (OSError, asyncpg.PostgresError) as exc:
                        raise TransientError(f"database unavailable: {type(exc).__name__}") from exc
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetchval_unscoped(self, query: str, *args: object) -> object:
        """One statement in autocommit, outside any tenant scope (one round trip): for the
        SECURITY DEFINER look-ups made before a tenant is known (is this token's subject still
        allowed to act?). Transaction-local settings of earlier transactions are gone."""
        pool = await self.pool()
        try:
            async with pool.acquire() as conn, _broken_ends(conn):
                return await conn.fetchval(query, *args)
        except _UNAVAILABLE as exc:
            raise TransientError(f"database unavailable: {type(exc).__name__}") from exc
        except asyncpg.InternalClientError as exc:
            raise TransientError("database unavailable: connection broken") from exc
        except asyncpg.InterfaceError as exc:
            if _connection_lost(exc):
                raise TransientError("database unavailable: connection lost") from exc
            raise
        except (asyncpg.QueryCanceledError, asyncpg.DeadlockDetectedError) as exc:
            raise Busy(f"database busy: {type(exc).__name__}; try again") from exc

    @asynccontextmanager
    async def transaction(self, scope: DbScope) -> AsyncIterator[Connection]:
        """A transaction whose RLS settings are ``scope``; they vanish at commit or rollback."""
        pool = await self.pool()
        try:
            async with pool.acquire() as conn, _broken_ends(conn), conn.transaction():
                await conn.execute(
                    "SELECT set_config('app.tenant_id', $1, true),"
                    " set_config('app.system_admin', $2, true),"
                    " set_config('app.actor_id', $3, true)",
                    str(scope.tenant_id) if scope.tenant_id else "",
                    "on" if scope.system_admin else "off",
                    str(scope.actor_id) if scope.actor_id else "",
                )
                yield conn
        except VisitlensError:
            raise  # raised by the caller inside the block: already classified
        except asyncpg.UniqueViolationError as exc:
            message, field = UNIQUE_CONFLICTS.get(
                exc.constraint_name or "", ("this already exists", None)
            )
            logger.info("unique violation: %s", exc.constraint_name)
            raise Conflict(message, field=field) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            logger.info("foreign key violation: %s", exc.constraint_name)
            raise InvalidInput("refers to something that does not exist (any more)") from exc
        except asyncpg.CheckViolationError as exc:
            logger.info("check violation: %s", exc.constraint_name)
            raise InvalidInput("a value is outside what is allowed") from exc
        except asyncpg.InsufficientPrivilegeError as exc:
            # A row-level-security WITH CHECK failure: the row is outside the caller's tenant.
            # (The server's message names the table and policy, never row values.)
            logger.warning("refused by PostgreSQL: %s", exc.args[0] if exc.args else exc)
            raise Forbidden("row is outside the caller's tenant") from exc
        except _UNAVAILABLE as exc:
            raise TransientError(f"database unavailable: {type(exc).__name__}") from exc
        except asyncpg.InternalClientError as exc:
            raise TransientError("database unavailable: connection broken") from exc
        except asyncpg.InterfaceError as exc:
            if _connection_lost(exc):  # the rollback of a transaction whose connection died
                raise TransientError("database unavailable: connection lost") from exc
            raise
        except (asyncpg.QueryCanceledError, asyncpg.DeadlockDetectedError,
                asyncpg.SerializationError) as exc:  # fmt: skip
            raise Busy(f"database busy: {type(exc).__name__}; try again") from exc
