"""The ingest use-case's unit of work in PostgreSQL: :class:`visitlens.identity.ingest.IngestStore`.

A customer's pass is one statement (:meth:`PostgresIngestUnit.record_pass`: its sighting,
customer, visit and views) in the transaction the use-case opens; row-level security scopes each
to the transaction's tenant. What a unit reads before it decides (senders still active, stored
results, cameras, busy people, whose the gallery's hits are) is one statement for the whole batch
or group (:meth:`PostgresIngestUnit.survey`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence, Set
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np

from visitlens.adapters.postgres import Connection, Database
from visitlens.contracts import DemographicsEstimate
from visitlens.errors import Busy
from visitlens.identity.decisions import Decision, OpenVisit, Outcome, View, VisitAction
from visitlens.identity.ingest import (
    CameraSite,
    CustomerPass,
    EventKey,
    LockedCustomer,
    StoredSighting,
    Survey,
    Track,
    VisitOutcome,
)
from visitlens.ports import DbScope, PersonKind
from visitlens.reports.stats import mark_dirty


def _stored_sightings(rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], StoredSighting]:
    out = {}
    for (sighting_id, source, event_id, decision, customer_id, staff_id, similarity,
         visit_id, opened, digest, started_at, ended_at, visit_count) in rows:  # fmt: skip
        visit = None
        if visit_id is not None:
            visit = VisitOutcome(visit_id, started_at, ended_at, bool(opened), visit_count or 1)
        out[(source, event_id)] = StoredSighting(
            sighting_id, decision, customer_id, staff_id, similarity, digest, visit
        )
    return out


def _sighting_values(key: EventKey, track: Track, decision: Decision) -> tuple[object, ...]:
    """$1-$14 of every sighting written, whoever it names: tenant_id, site_id, camera_id,
    ce_source, ce_id, ce_type, captured_at, last_seen_at, track_id, decision, similarity,
    quality, snapshot_key, ce_digest."""
    return (
        track.tenant_id, track.site_id, track.camera_id, key.source, key.event_id,
        key.event_type, track.first_seen, track.last_seen, track.track_id,
        decision.outcome.value, decision.similarity, max(s.quality for s in track.shots),
        track.snapshot_key, key.digest,
    )  # fmt: skip


class PostgresIngestStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[PostgresIngestUnit]:
        async with self._db.transaction(scope) as conn:
            yield PostgresIngestUnit(conn)


class PostgresIngestUnit:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def savepoint(self) -> AbstractAsyncContextManager[Any]:
        return self._conn.transaction()

    async def survey(
        self,
        tenant_id: UUID,
        keys: Sequence[EventKey],
        *,
        senders: Set[tuple[str, UUID]] = frozenset(),
        tracks: Sequence[Track] = (),
        views: Set[UUID] = frozenset(),
        max_pass: timedelta = timedelta(0),
    ) -> Survey:
        """One statement, one round trip: a unit of work's every read before it decides (the
        sightings of ``keys`` alone when nothing else is asked: a concurrent copy's answer).

        Busy people: no pass lasts longer than ``max_pass``, so a pass that overlaps began at
        most that long before this one; the index range has both ends (without the lower one,
        each event would scan every earlier sighting of the camera). The lower end is computed
        here, not in SQL: PostgreSQL does not use ``first_seen - interval`` of an unnested row as
        an index bound (EXPLAIN: a filter over the camera's every earlier sighting, 14-25 ms at
        60k sightings, against 0.07 ms with the bound passed as a column). And per track, in a
        LATERAL aggregate: as a join, PostgreSQL misjudges the ranges' selectivity for more than
        one track and hashes a sequential scan of every sighting (55 ms at 68k)."""
        pairs = sorted(senders)
        row = await self._conn.fetchrow(
            "SELECT ARRAY(SELECT s FROM unnest($1::text[], $2::uuid[]) AS t(k, s) "
            "  WHERE NOT auth_principal_active(k, s)) AS inactive, "
            "ARRAY(SELECT ROW(s.id, s.ce_source, s.ce_id, s.decision, s.customer_id, s.staff_id, "
            "  s.similarity, s.visit_id, s.opened_visit, s.ce_digest, v.started_at, v.ended_at, "
            "  c.visit_count) FROM sightings s LEFT JOIN visits v ON v.id = s.visit_id "
            "  LEFT JOIN customers c ON c.id = s.customer_id WHERE s.tenant_id = $3 "
            "  AND (s.ce_source, s.ce_id) IN (SELECT * FROM unnest($4::text[], $5::text[]))) "
            "  AS stored, "
            "ARRAY(SELECT ROW(c.id, c.site_id, s.visit_window_s, t.replay_horizon_days, "
            "  t.demographics_enabled) FROM cameras c JOIN sites s ON s.id = c.site_id "
            "  JOIN tenants t ON t.id = s.tenant_id WHERE c.id = ANY($6::uuid[])) AS cameras, "
            "ARRAY(SELECT ROW(t.n, b.people) "
            "  FROM unnest($7::int[], $8::uuid[], $9::text[], $10::timestamptz[], "
            "  $11::timestamptz[], $12::timestamptz[]) "
            "  AS t(n, camera_id, track_id, first_seen, last_seen, earliest) "
            "  CROSS JOIN LATERAL (SELECT array_agg(coalesce(s.customer_id, s.staff_id)) AS people "
            "  FROM sightings s WHERE s.camera_id = t.camera_id AND s.track_id <> t.track_id "
            "  AND s.captured_at <= t.last_seen AND s.captured_at >= t.earliest "
            "  AND s.last_seen_at >= t.first_seen "
            "  AND coalesce(s.customer_id, s.staff_id) IS NOT NULL) b) AS busy, "
            "ARRAY(SELECT ROW(e.id, coalesce(e.customer_id, e.staff_id), e.person_kind) "
            "  FROM person_embeddings e LEFT JOIN staff st ON st.id = e.staff_id "
            "  LEFT JOIN customers cu ON cu.id = e.customer_id "
            "  WHERE e.id = ANY($13::uuid[]) "
            "  AND (cu.last_seen_at >= app_gallery_scope_start() OR st.active)) "
            "  AS owners",
            [k for k, _ in pairs], [s for _, s in pairs], tenant_id,
            [k.source for k in keys], [k.event_id for k in keys],
            list({t.camera_id for t in tracks}), list(range(len(tracks))),
            [t.camera_id for t in tracks], [t.track_id for t in tracks],
            [t.first_seen for t in tracks], [t.last_seen for t in tracks],
            [t.first_seen - max_pass for t in tracks],
            list(views),
        )  # fmt: skip
        assert row is not None
        busy: list[frozenset[UUID]] = [frozenset() for _ in tracks]
        for n, people in row["busy"]:
            busy[n] = frozenset(people or ())
        cameras = {
            camera: CameraSite(site, window, horizon, demographics)
            for camera, site, window, horizon, demographics in row["cameras"]
        }
        return Survey(
            inactive=set(row["inactive"]),
            stored=_stored_sightings(row["stored"]),
            cameras=cameras,
            busy=busy,
            owners={view: (person, PersonKind(kind)) for view, person, kind in row["owners"]},
        )

    async def gallery_sizes(self) -> tuple[int, int]:
        row = await self._conn.fetchrow(
            "SELECT (SELECT count(*) FROM person_embeddings e JOIN customers c "
            "  ON c.id = e.customer_id WHERE c.last_seen_at >= app_gallery_scope_start()) "
            "  AS customers, "
            "(SELECT count(*) FROM person_embeddings WHERE person_kind = 'staff') AS staff"
        )
        assert row is not None
        return row["customers"], row["staff"]

    async def add_sighting(self, key: EventKey, track: Track, decision: Decision) -> UUID | None:
        sighting_id: UUID | None = await self._conn.fetchval(
            "INSERT INTO sightings (tenant_id, site_id, camera_id, ce_source, ce_id, ce_type, "
            "captured_at, last_seen_at, track_id, decision, similarity, quality, snapshot_key, "
            "ce_digest, staff_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
            "$14, $15) "
            "ON CONFLICT (tenant_id, ce_source, ce_id) DO NOTHING RETURNING id",
            *_sighting_values(key, track, decision),
            decision.person_id if decision.outcome is Outcome.STAFF else None,
        )
        return sighting_id

    async def lock_customer(self, customer_id: UUID, site_id: UUID) -> LockedCustomer | None:
        """The customer's row lock serialises every change to their visits; their latest visit at
        this site and their stored views come with it (one round trip)."""
        row = await self._conn.fetchrow(
            "SELECT v.id, v.started_at, v.ended_at, w.ids, w.qualities, w.embeddings "
            "FROM customers c LEFT JOIN LATERAL ("
            "SELECT id, started_at, ended_at FROM visits WHERE customer_id = c.id "
            "AND site_id = $2 ORDER BY ended_at DESC LIMIT 1) v ON true "
            "LEFT JOIN LATERAL (SELECT array_agg(e.id) AS ids, array_agg(e.quality) AS qualities, "
            "array_agg(e.embedding) AS embeddings FROM person_embeddings e "
            "WHERE e.customer_id = c.id AND e.embedding IS NOT NULL) w ON true "
            "WHERE c.id = $1 FOR UPDATE OF c",
            customer_id, site_id,
        )  # fmt: skip
        if row is None:
            return None
        latest = OpenVisit(row["id"], row["started_at"], row["ended_at"]) if row["id"] else None
        views = [
            View(view_id, np.frombuffer(embedding, "<f4"), float(quality or 0))
            for view_id, quality, embedding in zip(
                row["ids"] or [], row["qualities"] or [], row["embeddings"] or [], strict=True
            )
        ]
        return LockedCustomer(latest, views)

    async def record_pass(
        self, key: EventKey, track: Track, decision: Decision, write: CustomerPass
    ) -> tuple[UUID, int] | None:
        """One statement, one round trip: the sighting, and only if it is new (the unique key
        of the event decides, as in :meth:`add_sighting`), the customer created or updated, the
        visit opened or extended and the views kept and dropped. The ids of the new rows come
        from the caller, so every row is written once, already linked (no insert-then-update of
        the sighting). Foreign keys are checked at the end of the statement, after the
        customer's and the visit's rows exist. A new customer in the review band
        (``Decision.review``) is kept with its closest customer as a duplicates suggestion."""
        change = write.change
        opened = change.action is VisitAction.OPEN
        row = await self._conn.fetchrow(
            "WITH s AS (INSERT INTO sightings (tenant_id, site_id, camera_id, ce_source, ce_id, "
            "  ce_type, captured_at, last_seen_at, track_id, decision, similarity, quality, "
            "  snapshot_key, ce_digest, customer_id, visit_id, opened_visit) "
            "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
            "  $18::boolean) "
            "  ON CONFLICT (tenant_id, ce_source, ce_id) DO NOTHING RETURNING id), "
            "created AS (INSERT INTO customers (id, tenant_id, first_seen_at, last_seen_at, "
            "  first_site_id, visit_count) SELECT $15, $1, $7, $8, $2, 1 FROM s "
            "  WHERE $17::boolean RETURNING visit_count), "
            "updated AS (UPDATE customers SET visit_count = visit_count + ($18::boolean)::int, "
            "  last_seen_at = greatest(last_seen_at, $8), first_seen_at = least(first_seen_at, $7), "
            "  updated_at = now() WHERE id = $15 AND NOT $17::boolean AND EXISTS (SELECT FROM s) "
            "  RETURNING visit_count), "
            "opened AS (INSERT INTO visits (id, tenant_id, site_id, customer_id, started_at, "
            "  ended_at, is_new) SELECT $16, $1, $2, $15, $19, $20, $17::boolean FROM s "
            "  WHERE $18::boolean), "
            "extended AS (UPDATE visits SET started_at = $19, ended_at = $20, "
            "  sighting_count = sighting_count + 1, updated_at = now() "
            "  WHERE id = $16 AND NOT $18::boolean AND EXISTS (SELECT FROM s)), "
            "gone AS (DELETE FROM person_embeddings WHERE id = ANY($21::uuid[]) "
            "  AND EXISTS (SELECT FROM s)), "
            "kept AS (INSERT INTO person_embeddings (id, tenant_id, person_kind, customer_id, "
            "  model_id, dim, quality, source, snapshot_key, embedding) "
            "  SELECT v, $1, 'customer', $15, $22, $23, q, 'track', $13, e "
            "  FROM unnest($24::uuid[], $25::real[], $26::bytea[]) AS t(v, q, e) "
            "  WHERE EXISTS (SELECT FROM s)), "
            # a new customer whose closest customer scored in the review band: a duplicates
            # suggestion (none if that customer was erased meanwhile: its row is skipped)
            "suggested AS (INSERT INTO duplicate_suggestions (tenant_id, customer_id, "
            "  candidate_id, similarity) SELECT $1, $15, c.id, $28 FROM customers c "
            "  WHERE c.id = $27 AND $17::boolean AND EXISTS (SELECT FROM s) FOR KEY SHARE) "
            "SELECT s.id, coalesce((SELECT visit_count FROM created), "
            "  (SELECT visit_count FROM updated)) AS visits FROM s",
            *_sighting_values(key, track, decision), write.customer_id, write.visit_id,
            write.new_customer, opened, change.started_at, change.ended_at, list(write.remove), track.model_id, track.dim,
            [view_id for view_id, _ in write.add], [shot.quality for _, shot in write.add],
            [shot.embedding.astype("<f4").tobytes() for _, shot in write.add],
            decision.review[0] if decision.review else None,
            decision.review[1] if decision.review else None,
        )  # fmt: skip
        if row is None:
            return None
        if row["visits"] is None:
            raise Busy("the matched customer was erased meanwhile; deciding again")
        return row["id"], row["visits"]

    async def add_demographics(
        self,
        sighting_id: UUID,
        customer_id: UUID,
        estimate: DemographicsEstimate,
        evidence: float,
    ) -> tuple[float, dict[str, int]]:
        await self._conn.execute(
            "UPDATE sightings SET gender = $2, age_band = $3 WHERE id = $1",
            sighting_id, estimate.gender, estimate.age_band,
        )  # fmt: skip
        row = await self._conn.fetchrow(
            "UPDATE customers SET gender_score = gender_score + $2, age_band_votes = CASE "
            "WHEN $3::text IS NULL THEN age_band_votes ELSE jsonb_set(age_band_votes, "
            "ARRAY[$3::text], to_jsonb(coalesce((age_band_votes ->> $3::text)::int, 0) + 1)) END "
            "WHERE id = $1 RETURNING gender_score, age_band_votes",
            customer_id, evidence, estimate.age_band,
        )  # fmt: skip
        assert row is not None  # the customer row is locked by this transaction
        return float(row["gender_score"]), dict(row["age_band_votes"])

    async def set_customer_demographics(
        self, customer_id: UUID, gender: str | None, band: str | None
    ) -> None:
        await self._conn.execute(
            "UPDATE customers SET gender = $2, age_band = $3 WHERE id = $1",
            customer_id, gender, band,
        )  # fmt: skip

    async def mark_dirty(self, marks: Sequence[tuple[UUID, datetime]]) -> None:
        await mark_dirty(self._conn, marks)
