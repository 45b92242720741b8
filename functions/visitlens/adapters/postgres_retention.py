"""The purge use-case's unit of work in PostgreSQL: :class:`visitlens.retention.purge.PurgeStore`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from uuid import UUID

from visitlens.adapters.postgres import Connection, Database
from visitlens.ports import DbScope
from visitlens.retention.purge import TenantRetention
from visitlens.tenancy import audit


class PostgresPurgeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def retention(self) -> list[TenantRetention]:
        async with self._db.transaction(DbScope(None, system_admin=True)) as conn:
            rows = await conn.fetch(
                "SELECT t.id, t.raw_retention_days, r.finished_at FROM tenants t "
                "LEFT JOIN retention_runs r ON r.tenant_id = t.id ORDER BY t.id"
            )
        return [TenantRetention(r["id"], r["raw_retention_days"], r["finished_at"]) for r in rows]

    async def chain_verified(self, tenant_id: UUID, problems: int) -> None:
        async with self._db.transaction(DbScope(tenant_id)) as conn:
            await conn.execute(
                "UPDATE retention_runs SET audit_chain_problems = $2 WHERE tenant_id = $1",
                tenant_id, problems,
            )  # fmt: skip

    @asynccontextmanager
    async def unit(self, tenant_id: UUID) -> AsyncIterator[PostgresPurgeUnit]:
        async with self._db.transaction(DbScope(tenant_id)) as conn:
            yield PostgresPurgeUnit(conn, tenant_id)


class PostgresPurgeUnit:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def expired_keys(self, cutoff: datetime, prefix: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT snapshot_key FROM sightings WHERE captured_at < $1 "
            "AND snapshot_key IS NOT NULL UNION SELECT snapshot_key FROM person_embeddings "
            "WHERE created_at < $1 AND snapshot_key LIKE $2",
            cutoff, prefix + "%",
        )  # fmt: skip
        return [r["snapshot_key"] for r in rows]

    async def clear_pointers(self, cutoff: datetime, prefix: str) -> int:
        sightings = await self._conn.execute(
            "UPDATE sightings SET snapshot_key = NULL WHERE captured_at < $1 "
            "AND snapshot_key IS NOT NULL",
            cutoff,
        )
        views = await self._conn.execute(
            "UPDATE person_embeddings SET snapshot_key = NULL WHERE created_at < $1 "
            "AND snapshot_key LIKE $2",
            cutoff, prefix + "%",
        )  # fmt: skip
        return int(sightings.split()[-1]) + int(views.split()[-1])

    async def audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        await audit.record(self._conn, None, action, "bucket", target, self._tenant_id, details)

    async def finished(self, at: datetime, objects_deleted: int, survivors_remaining: int) -> None:
        await self._conn.execute(
            "INSERT INTO retention_runs (tenant_id, finished_at, objects_deleted, "
            "survivors_remaining) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET "
            "finished_at = excluded.finished_at, objects_deleted = excluded.objects_deleted, "
            "survivors_remaining = excluded.survivors_remaining",
            self._tenant_id, at, objects_deleted, survivors_remaining,
        )  # fmt: skip
