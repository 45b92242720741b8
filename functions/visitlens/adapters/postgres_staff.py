"""Staff enrolment's unit of work in PostgreSQL: :class:`visitlens.staff.enrollment.StaffStore`.

Every change to a tenant's staff images bumps its staff-gallery version (a database trigger): that
is how edge workers learn to refresh their local copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from visitlens.adapters.postgres import Connection, Database, Record
from visitlens.auth.principal import Principal
from visitlens.ports import DbScope
from visitlens.staff.enrollment import StaffImage
from visitlens.tenancy import audit


class PostgresStaffStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[PostgresStaffUnit]:
        assert scope.tenant_id is not None
        async with self._db.transaction(scope) as conn:
            yield PostgresStaffUnit(conn, scope.tenant_id)


class PostgresStaffUnit:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def staff_exists(self, staff_id: UUID, *, lock: bool = False) -> bool:
        if lock:
            found = await self._conn.fetchval(
                "SELECT 1 FROM staff WHERE id = $1 FOR UPDATE", staff_id
            )
        else:
            found = await self._conn.fetchval("SELECT 1 FROM staff WHERE id = $1", staff_id)
        return found is not None

    async def image_by_key(self, object_key: str) -> Record | None:
        return await self._conn.fetchrow(
            "SELECT * FROM staff_face_images WHERE object_key = $1", object_key
        )

    async def add_view(
        self, view_id: UUID, staff_id: UUID, model_id: str, dim: int, quality: float,
        object_key: str, embedding: bytes,
    ) -> None:  # fmt: skip
        await self._conn.execute(
            "INSERT INTO person_embeddings (id, tenant_id, person_kind, staff_id, model_id,"
            " dim, quality, source, snapshot_key, embedding) "
            "VALUES ($1, $2, 'staff', $3, $4, $5, $6, 'enrollment', $7, $8)",
            view_id, self._tenant_id, staff_id, model_id, dim, quality, object_key, embedding,
        )  # fmt: skip

    async def delete_view(self, view_id: UUID) -> None:
        await self._conn.execute("DELETE FROM person_embeddings WHERE id = $1", view_id)

    async def has_primary(self, staff_id: UUID) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM staff_face_images WHERE staff_id = $1 "
                "AND is_primary)",
                staff_id,
            )
        )

    async def clear_primary(self, staff_id: UUID) -> None:
        await self._conn.execute(
            "UPDATE staff_face_images SET is_primary = false WHERE staff_id = $1 AND is_primary",
            staff_id,
        )

    async def add_image(
        self, image_id: UUID, staff_id: UUID, object_key: str, primary: bool, quality: float,
        landmarks: list[list[float]], view_id: UUID,
    ) -> Record:  # fmt: skip
        row = await self._conn.fetchrow(
            "INSERT INTO staff_face_images (id, tenant_id, staff_id, object_key, is_primary,"
            " quality, landmarks, embedding_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "RETURNING *",
            image_id, self._tenant_id, staff_id, object_key, primary, quality, landmarks, view_id,
        )  # fmt: skip
        assert row is not None
        return row

    async def delete_image(self, image_id: UUID, staff_id: UUID) -> Record | None:
        return await self._conn.fetchrow(
            "DELETE FROM staff_face_images WHERE id = $1 AND staff_id = $2 RETURNING *",
            image_id, staff_id,
        )  # fmt: skip

    async def promote_best(self, staff_id: UUID) -> None:
        await self._conn.execute(
            "UPDATE staff_face_images SET is_primary = true WHERE id = ("
            "SELECT id FROM staff_face_images WHERE staff_id = $1 "
            "ORDER BY quality DESC NULLS LAST, created_at LIMIT 1)",
            staff_id,
        )

    async def set_primary(self, image_id: UUID, staff_id: UUID) -> Record | None:
        return await self._conn.fetchrow(
            "UPDATE staff_face_images SET is_primary = true WHERE id = $1 AND staff_id = $2 "
            "RETURNING *",
            image_id, staff_id,
        )  # fmt: skip

    async def image_keys(self, staff_id: UUID) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT object_key FROM staff_face_images WHERE staff_id = $1", staff_id
        )
        return [r["object_key"] for r in rows]

    async def delete_staff(self, staff_id: UUID) -> None:
        await self._conn.execute("DELETE FROM staff WHERE id = $1", staff_id)

    async def active_names(self, staff_ids: Sequence[UUID]) -> dict[UUID, str]:
        rows = await self._conn.fetch(
            "SELECT id, display_name FROM staff WHERE id = ANY($1::uuid[]) AND active",
            list(staff_ids),
        )
        return {r["id"]: r["display_name"] for r in rows}

    async def staff_views(self) -> int:
        # counted as ingest counts its gallery (postgres_ingest.PostgresIngestUnit.gallery_sizes)
        views: int = await self._conn.fetchval(
            "SELECT count(*) FROM person_embeddings WHERE person_kind = 'staff'"
        )
        return views

    async def images(self) -> list[StaffImage]:
        rows = await self._conn.fetch(
            "SELECT i.id, i.staff_id, i.object_key, e.model_id, e.id AS view_id "
            "FROM staff_face_images i LEFT JOIN person_embeddings e ON e.id = i.embedding_id "
            "ORDER BY i.created_at"
        )
        return [StaffImage(**dict(r.items())) for r in rows]

    async def set_image_view(self, image_id: UUID, view_id: UUID, quality: float) -> None:
        await self._conn.execute(
            "UPDATE staff_face_images SET embedding_id = $2, quality = $3 WHERE id = $1",
            image_id, view_id, quality,
        )  # fmt: skip

    async def audit(
        self, actor: Principal | None, action: str, target_id: UUID | None,
        details: dict[str, Any],
    ) -> None:  # fmt: skip
        await audit.record(self._conn, actor, action, "staff", target_id, self._tenant_id, details)
