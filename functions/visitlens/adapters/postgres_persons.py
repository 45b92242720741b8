"""Merging's and erasure's unit of work in PostgreSQL: :class:`visitlens.persons.common.PersonsStore`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from visitlens.adapters.postgres import Connection, Database
from visitlens.auth.principal import Principal
from visitlens.persons.common import Customer, MergeRecord, MovedView, VisitRef
from visitlens.persons.review import DuplicatePair, PersonGlance
from visitlens.ports import DbScope
from visitlens.reports.stats import rematerialise
from visitlens.tenancy import audit


class PostgresPersonsStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[PostgresPersonsUnit]:
        assert scope.tenant_id is not None
        async with self._db.transaction(scope) as conn:
            yield PostgresPersonsUnit(conn, scope.tenant_id)

    async def open_pairs(
        self, scope: DbScope, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[DuplicatePair]:
        async with self._db.transaction(scope) as conn:
            rows = await conn.fetch(_OPEN_PAIRS, after[0] if after else None,
                                    after[1] if after else None, limit)  # fmt: skip
        return [
            DuplicatePair(
                PersonGlance(*(r[f"a_{f}"] for f in _GLANCE)),
                PersonGlance(*(r[f"b_{f}"] for f in _GLANCE)),
                float(r["similarity"]),
                r["created_at"],
            )
            for r in rows
        ]


_GLANCE = ("id", "first_seen_at", "last_seen_at", "visit_count", "snapshot")

_OPEN_PAIRS = """
SELECT d.similarity, d.created_at,
       a.id AS a_id, a.first_seen_at AS a_first_seen_at, a.last_seen_at AS a_last_seen_at,
       a.visit_count AS a_visit_count,
       (SELECT s.id FROM sightings s WHERE s.customer_id = a.id AND s.snapshot_key IS NOT NULL
        ORDER BY s.captured_at DESC, s.id DESC LIMIT 1) AS a_snapshot,
       b.id AS b_id, b.first_seen_at AS b_first_seen_at, b.last_seen_at AS b_last_seen_at,
       b.visit_count AS b_visit_count,
       (SELECT s.id FROM sightings s WHERE s.customer_id = b.id AND s.snapshot_key IS NOT NULL
        ORDER BY s.captured_at DESC, s.id DESC LIMIT 1) AS b_snapshot
FROM duplicate_suggestions d
JOIN customers a ON a.id = d.customer_id
JOIN customers b ON b.id = d.candidate_id
WHERE NOT EXISTS (SELECT FROM not_same_person n
                  WHERE n.person_a = least(d.customer_id, d.candidate_id)
                    AND n.person_b = greatest(d.customer_id, d.candidate_id))
  AND ($1::timestamptz IS NULL OR (d.created_at, d.customer_id) < ($1, $2))
ORDER BY d.created_at DESC, d.customer_id DESC
LIMIT $3
"""
"""Open pairs, newest first; a pair marked "not the same person" is hidden."""


class PostgresPersonsUnit:
    def __init__(self, conn: Connection, tenant_id: UUID) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def lock_customers(self, ids: Sequence[UUID]) -> dict[UUID, Customer]:
        rows = await self._conn.fetch(
            "SELECT id, first_seen_at, last_seen_at, first_site_id, visit_count, gender, "
            "age_band, created_at FROM customers WHERE id = ANY($1::uuid[]) ORDER BY id "
            "FOR UPDATE",
            list(ids),
        )
        return {r["id"]: Customer(**dict(r.items())) for r in rows}

    async def marked_distinct(self, a: UUID, b: UUID) -> bool:
        marked = await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM not_same_person WHERE person_a = $1 AND person_b = $2)",
            a, b,
        )  # fmt: skip
        return bool(marked)

    async def add_distinct_mark(self, a: UUID, b: UUID, by: UUID) -> bool:
        created = await self._conn.fetchval(
            "INSERT INTO not_same_person (tenant_id, person_a, person_b, marked_by) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
            self._tenant_id, a, b, by,
        )  # fmt: skip
        return bool(created)

    async def visits_of(self, people: Sequence[UUID]) -> list[VisitRef]:
        rows = await self._conn.fetch(
            "SELECT id, customer_id, is_new, site_id, started_at FROM visits "
            "WHERE customer_id = ANY($1::uuid[])",
            list(people),
        )
        return [VisitRef(**dict(r.items())) for r in rows]

    async def move_sightings(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[UUID]:
        rows = await self._conn.fetch(
            "UPDATE sightings SET customer_id = $1 WHERE customer_id = $2 "
            "AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[])) RETURNING id",
            target, source, list(only) if only is not None else None,
        )  # fmt: skip
        return [r["id"] for r in rows]

    async def move_visits(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> None:
        await self._conn.execute(
            "UPDATE visits SET customer_id = $1 WHERE customer_id = $2 "
            "AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))",
            target, source, list(only) if only is not None else None,
        )  # fmt: skip

    async def move_views(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[MovedView]:
        rows = await self._conn.fetch(
            "UPDATE person_embeddings SET customer_id = $1 WHERE customer_id = $2 "
            "AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[])) RETURNING id, embedding",
            target, source, list(only) if only is not None else None,
        )  # fmt: skip
        return [MovedView(r["id"], r["embedding"]) for r in rows]

    async def absorb(self, kept: UUID, merged: Customer) -> None:
        await self._conn.execute(
            "UPDATE customers SET gender = coalesce(gender, $2), age_band = coalesce(age_band, $3),"
            " first_site_id = coalesce(first_site_id, $4), "
            "first_seen_at = least(first_seen_at, $5), last_seen_at = greatest(last_seen_at, $6) "
            "WHERE id = $1",
            kept, merged.gender, merged.age_band, merged.first_site_id, merged.first_seen_at,
            merged.last_seen_at,
        )  # fmt: skip

    async def delete_customer(self, customer: UUID) -> None:
        await self._conn.execute("DELETE FROM customers WHERE id = $1", customer)

    async def recompute_customer(self, customer: UUID) -> None:
        await self._conn.execute(
            "UPDATE visits SET is_new = (id = (SELECT id FROM visits WHERE customer_id = $1 "
            "ORDER BY started_at, id LIMIT 1)) WHERE customer_id = $1",
            customer,
        )
        await self._conn.execute(
            "UPDATE customers c SET first_seen_at = least(c.first_seen_at, v.first), "
            "last_seen_at = greatest(v.last, least(c.first_seen_at, v.first)), visit_count = v.n, "
            "updated_at = now() FROM (SELECT min(started_at) AS first, max(ended_at) AS last, "
            "count(*) AS n FROM visits WHERE customer_id = $1) v WHERE c.id = $1 AND v.n > 0",
            customer,
        )

    async def add_merge(
        self, kept: Customer, merged: Customer, sighting_ids: Sequence[UUID],
        visits: list[dict[str, Any]], view_ids: Sequence[UUID], by: UUID,
    ) -> UUID:  # fmt: skip
        merge_id: UUID = await self._conn.fetchval(
            "INSERT INTO merges (tenant_id, kept_id, merged_id, merged_customer, kept_customer, "
            "sighting_ids, visits, embedding_ids, merged_by) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            self._tenant_id, kept.id, merged.id, merged.snapshot(), kept.snapshot(),
            list(sighting_ids), json.loads(json.dumps(visits)), list(view_ids), by,
        )  # fmt: skip
        return merge_id

    async def merge_record(self, merge_id: UUID) -> MergeRecord | None:
        r = await self._conn.fetchrow("SELECT * FROM merges WHERE id = $1 FOR UPDATE", merge_id)
        if r is None:
            return None
        return MergeRecord(
            r["id"], r["kept_id"], r["merged_id"], r["merged_customer"], r["kept_customer"],
            list(r["sighting_ids"]), list(r["visits"]), list(r["embedding_ids"]),
            r["undone_at"] is not None,
        )  # fmt: skip

    async def restore_customer(self, customer: UUID, snapshot: dict[str, Any]) -> None:
        await self._conn.execute(
            "INSERT INTO customers (id, tenant_id, first_seen_at, last_seen_at, first_site_id, "
            "visit_count, gender, age_band, created_at) VALUES ($1, $2, $3::text::timestamptz, "
            "$4::text::timestamptz, $5::text::uuid, $6::text::int, $7, $8, $9::text::timestamptz)",
            customer, self._tenant_id, snapshot["first_seen_at"], snapshot["last_seen_at"],
            snapshot["first_site_id"], snapshot["visit_count"], snapshot["gender"],
            snapshot["age_band"], snapshot["created_at"],
        )  # fmt: skip

    async def restore_labels(self, customer: UUID, snapshot: dict[str, Any]) -> None:
        await self._conn.execute(
            "UPDATE customers SET gender = $2, age_band = $3, "
            "first_seen_at = $4::text::timestamptz WHERE id = $1",
            customer, snapshot["gender"], snapshot["age_band"], snapshot["first_seen_at"],
        )  # fmt: skip

    async def set_visit_new(self, visit_id: UUID, is_new: bool) -> None:
        await self._conn.execute("UPDATE visits SET is_new = $2 WHERE id = $1", visit_id, is_new)

    async def recount(self, customer: UUID) -> None:
        await self._conn.execute(
            "UPDATE customers c SET visit_count = (SELECT count(*) FROM visits "
            "WHERE customer_id = c.id), last_seen_at = greatest(c.first_seen_at, coalesce("
            "(SELECT max(ended_at) FROM visits WHERE customer_id = c.id), c.first_seen_at)) "
            "WHERE c.id = $1",
            customer,
        )

    async def mark_undone(self, merge_id: UUID) -> None:
        await self._conn.execute("UPDATE merges SET undone_at = now() WHERE id = $1", merge_id)

    async def visit_starts(self, visit_ids: Sequence[UUID]) -> list[tuple[UUID, datetime]]:
        rows = await self._conn.fetch(
            "SELECT site_id, started_at FROM visits WHERE id = ANY($1::uuid[])", list(visit_ids)
        )
        return [(r["site_id"], r["started_at"]) for r in rows]

    async def snapshot_keys(self, customer: UUID) -> set[str]:
        rows = await self._conn.fetch(
            "SELECT snapshot_key FROM sightings WHERE customer_id = $1 "
            "AND snapshot_key IS NOT NULL UNION SELECT snapshot_key FROM person_embeddings "
            "WHERE customer_id = $1 AND snapshot_key IS NOT NULL",
            customer,
        )
        return {r["snapshot_key"] for r in rows}

    async def erase_customer(self, customer: UUID) -> tuple[int, int]:
        sightings = await self._conn.execute(
            "DELETE FROM sightings WHERE customer_id = $1", customer
        )
        views = await self._conn.execute(
            "DELETE FROM person_embeddings WHERE customer_id = $1", customer
        )
        await self._conn.execute(
            "DELETE FROM merges WHERE kept_id = $1 OR merged_id = $1", customer
        )
        await self._conn.execute(
            "DELETE FROM not_same_person WHERE person_a = $1 OR person_b = $1", customer
        )
        await self._conn.execute("DELETE FROM customers WHERE id = $1", customer)  # visits → NULL
        return int(sightings.split()[-1]), int(views.split()[-1])

    async def refresh_stats(self, visits: Iterable[tuple[UUID, datetime]]) -> None:
        by_site: dict[UUID, set[datetime]] = {}
        for site, start in visits:
            by_site.setdefault(site, set()).add(start)
        for site, starts in by_site.items():
            for start in starts:
                await rematerialise(self._conn, start, start + timedelta(microseconds=1), [site])

    async def audit(
        self, principal: Principal, action: str, target_type: str, target_id: UUID | str,
        details: dict[str, Any],
    ) -> None:  # fmt: skip
        await audit.record(
            self._conn, principal, action, target_type, target_id, self._tenant_id, details
        )
