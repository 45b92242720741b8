"""Merge person B into A (one transaction), split a merge back out, mark a pair as different.

A merge re-points B's sightings, visits and embeddings to A, moves B's vectors in Milvus, removes
B, recomputes which of A's visits is the first ("new"), refreshes the hourly statistics of the
visits involved, and records what it moved (``merges``) with an audit entry. ``unmerge`` puts
exactly those rows back. A pair marked "not the same person" can not be merged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.postgres import Database
from visitlens.api import audit
from visitlens.auth.principal import Principal
from visitlens.errors import Conflict, InvalidInput, NotFound
from visitlens.persons.common import (
    lock_customers,
    move_vectors,
    recompute_customer,
    refresh_stats,
)

logger = logging.getLogger(__name__)
_CUSTOMER_FIELDS = ("first_seen_at", "last_seen_at", "first_site_id", "visit_count", "gender",
                    "age_band", "created_at")  # fmt: skip


def _snapshot(row: Any) -> dict[str, Any]:
    return {k: (str(row[k]) if row[k] is not None else None) for k in _CUSTOMER_FIELDS}


def pair(a: UUID, b: UUID) -> tuple[UUID, UUID]:
    return (a, b) if str(a) < str(b) else (b, a)


@dataclass(slots=True)
class PersonMerger:
    db: Database
    gallery: Gallery

    async def merge(
        self, principal: Principal, tenant_id: UUID, kept: UUID, merged: UUID
    ) -> dict[str, Any]:
        if kept == merged:
            raise InvalidInput("a person cannot be merged into itself", field="body.merged_id")
        scope = principal.db_scope(tenant_id)
        moved_views: list[Any] = []
        async with self.db.transaction(scope) as conn:
            people = await lock_customers(conn, [kept, merged])
            a, b = pair(kept, merged)
            if await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM not_same_person WHERE person_a = $1 AND person_b = $2)",
                a, b,
            ):  # fmt: skip
                raise Conflict("these two were marked as different people; remove the mark first")
            sightings = await conn.fetch(
                "UPDATE sightings SET customer_id = $1 WHERE customer_id = $2 RETURNING id",
                kept, merged,
            )  # fmt: skip
            before = await conn.fetch(
                "SELECT id, customer_id, is_new, site_id, started_at FROM visits "
                "WHERE customer_id = ANY($1::uuid[])",
                [kept, merged],
            )
            await conn.execute(
                "UPDATE visits SET customer_id = $1 WHERE customer_id = $2", kept, merged
            )
            moved_views = list(
                await conn.fetch(
                    "UPDATE person_embeddings SET customer_id = $1 WHERE customer_id = $2 "
                    "RETURNING id, embedding",
                    kept,
                    merged,
                )
            )
            await conn.execute(
                "UPDATE customers SET gender = coalesce(gender, $2), age_band = coalesce(age_band, $3),"
                " first_site_id = coalesce(first_site_id, $4) WHERE id = $1",
                kept, people[merged]["gender"], people[merged]["age_band"],
                people[merged]["first_site_id"],
            )  # fmt: skip
            await conn.execute(
                "UPDATE customers SET first_seen_at = least(first_seen_at, $2), "
                "last_seen_at = greatest(last_seen_at, $3) WHERE id = $1",
                kept, people[merged]["first_seen_at"], people[merged]["last_seen_at"],
            )  # fmt: skip
            await conn.execute("DELETE FROM customers WHERE id = $1", merged)
            await recompute_customer(conn, kept)
            visits = [
                {"id": str(v["id"]), "is_new": v["is_new"],
                 "owner": "merged" if v["customer_id"] == merged else "kept"}
                for v in before
            ]  # fmt: skip
            merge_id = await conn.fetchval(
                "INSERT INTO merges (tenant_id, kept_id, merged_id, merged_customer, kept_customer, "
                "sighting_ids, visits, embedding_ids, merged_by) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                tenant_id, kept, merged, _snapshot(people[merged]), _snapshot(people[kept]),
                [r["id"] for r in sightings], json.loads(json.dumps(visits)),
                [r["id"] for r in moved_views], principal.subject,
            )  # fmt: skip
            await refresh_stats(conn, [(v["site_id"], v["started_at"]) for v in before])
            moved = {
                "visits": sum(1 for v in visits if v["owner"] == "merged"),
                "sightings": len(sightings),
                "embeddings": len(moved_views),
            }
            await audit.record(conn, principal, "person.merge", "customer", kept, tenant_id,
                        {"merged_id": str(merged), "merge_id": str(merge_id), **moved})  # fmt: skip
            # Milvus last, inside the transaction: if it fails, nothing in PostgreSQL changed.
            await move_vectors(self.gallery, tenant_id, moved_views, kept)
        logger.info("merge %s: %s into %s (%s)", merge_id, merged, kept, moved)
        return {"merge_id": merge_id, "kept_id": kept, "merged_id": merged, "moved": moved}

    async def unmerge(
        self, principal: Principal, tenant_id: UUID, merge_id: UUID
    ) -> dict[str, Any]:
        scope = principal.db_scope(tenant_id)
        async with self.db.transaction(scope) as conn:
            record = await conn.fetchrow("SELECT * FROM merges WHERE id = $1 FOR UPDATE", merge_id)
            if record is None:
                raise NotFound(f"merge {merge_id} not found")
            if record["undone_at"] is not None:
                raise Conflict("this merge was already undone")
            kept, merged = record["kept_id"], record["merged_id"]
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)", kept
            ):
                raise Conflict(f"{kept} was itself merged or erased since; undo that first")
            await lock_customers(conn, [kept])
            snap = record["merged_customer"]
            await conn.execute(
                "INSERT INTO customers (id, tenant_id, first_seen_at, last_seen_at, first_site_id, "
                "visit_count, gender, age_band, created_at) VALUES ($1, $2, $3::text::timestamptz, "
                "$4::text::timestamptz, $5::text::uuid, $6::text::int, $7, $8, $9::text::timestamptz)",
                merged, tenant_id, snap["first_seen_at"], snap["last_seen_at"],
                snap["first_site_id"], snap["visit_count"], snap["gender"], snap["age_band"],
                snap["created_at"],
            )  # fmt: skip
            sightings = await conn.execute(
                "UPDATE sightings SET customer_id = $1 WHERE id = ANY($2::uuid[]) "
                "AND customer_id = $3",
                merged, record["sighting_ids"], kept,
            )  # fmt: skip
            visits = record["visits"]
            back = [UUID(v["id"]) for v in visits if v["owner"] == "merged"]
            await conn.execute(
                "UPDATE visits SET customer_id = $1 WHERE id = ANY($2::uuid[]) AND customer_id = $3",
                merged, back, kept,
            )  # fmt: skip
            for v in visits:
                await conn.execute(
                    "UPDATE visits SET is_new = $2 WHERE id = $1", UUID(v["id"]), v["is_new"]
                )
            views = list(
                await conn.fetch(
                    "UPDATE person_embeddings SET customer_id = $1 WHERE id = ANY($2::uuid[]) "
                    "AND customer_id = $3 RETURNING id, embedding",
                    merged,
                    record["embedding_ids"],
                    kept,
                )
            )
            kept_snap = record["kept_customer"]
            await conn.execute(
                "UPDATE customers SET gender = $2, age_band = $3, "
                "first_seen_at = $4::text::timestamptz WHERE id = $1",
                kept, kept_snap["gender"], kept_snap["age_band"], kept_snap["first_seen_at"],
            )  # fmt: skip
            for person in (kept, merged):
                await conn.execute(
                    "UPDATE customers c SET visit_count = (SELECT count(*) FROM visits "
                    "WHERE customer_id = c.id), last_seen_at = greatest(c.first_seen_at, coalesce("
                    "(SELECT max(ended_at) FROM visits WHERE customer_id = c.id), c.first_seen_at)) "
                    "WHERE c.id = $1",
                    person,
                )
            await conn.execute("UPDATE merges SET undone_at = now() WHERE id = $1", merge_id)
            touched = await conn.fetch(
                "SELECT site_id, started_at FROM visits WHERE id = ANY($1::uuid[])",
                [UUID(v["id"]) for v in visits],
            )
            await refresh_stats(conn, [(t["site_id"], t["started_at"]) for t in touched])
            moved = {"visits": len(back), "sightings": int(sightings.split()[-1]),
                     "embeddings": len(views)}  # fmt: skip
            await audit.record(conn, principal, "person.unmerge", "customer", merged, tenant_id,
                        {"kept_id": str(kept), "merge_id": str(merge_id), **moved})  # fmt: skip
            await move_vectors(self.gallery, tenant_id, views, merged)
        return {"merge_id": merge_id, "kept_id": kept, "merged_id": merged, "moved": moved}

    async def mark_distinct(
        self, principal: Principal, tenant_id: UUID, first: UUID, second: UUID
    ) -> bool:
        """Mark two persons as different people; True when the mark is new."""
        if first == second:
            raise InvalidInput("two different persons are needed", field="body.person_b")
        a, b = pair(first, second)
        async with self.db.transaction(principal.db_scope(tenant_id)) as conn:
            await lock_customers(conn, [a, b])
            created = await conn.fetchval(
                "INSERT INTO not_same_person (tenant_id, person_a, person_b, marked_by) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                tenant_id, a, b, principal.subject,
            )  # fmt: skip
            if created:
                await audit.record(conn, principal, "person.not_same", "customer", a, tenant_id,
                            {"other_id": str(b)})  # fmt: skip
        return bool(created)
