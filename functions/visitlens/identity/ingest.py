"""Ingest one face.detected event: scope and model checks, idempotency, match, and the customer,
visit, sighting and gallery updates, in one PostgreSQL transaction.

Exactly-once counting over at-least-once delivery: the sighting row, keyed by the CloudEvent's
(source, id) with a unique constraint, is inserted first in the transaction that changes the
visit; a replay (sequential or concurrent) finds it and gets the stored result back.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np

from visitlens.adapters.gallery import Gallery, GalleryRow
from visitlens.adapters.postgres import Connection, Database, Record
from visitlens.auth.principal import Principal, Role
from visitlens.config import IdentitySettings
from visitlens.contracts import (
    SEED_MODEL_ID,
    DemographicsEstimate,
    FaceDetectedV1,
    FaceDetectedV2,
    FaceDetectedV3,
)
from visitlens.errors import Conflict, InvalidInput, VisitlensError
from visitlens.identity.decisions import (
    Decision,
    OpenVisit,
    Outcome,
    PersonKind,
    Thresholds,
    View,
    VisitAction,
    choose_views,
    decide,
    visit_change,
)
from visitlens.reports.stats import mark_dirty
from visitlens.tenancy.object_keys import require_camera_key
from visitlens.tenancy.scope import DbScope
from visitlens.vision.demographics import person_demographics, signed_evidence
from visitlens.vision.types import Floats

logger = logging.getLogger(__name__)

INGEST_ROLES = (Role.WORKER, Role.TENANT_ADMIN)
GALLERY_SIZE_TTL_S = 60.0
GALLERY_SIZE_EVERY = 32
"""The gallery sizes behind the open-set thresholds are recounted after this long or this many
events of a tenant, whichever comes first."""


@dataclass(frozen=True, slots=True)
class Shot:
    embedding: Floats
    quality: float


@dataclass(frozen=True, slots=True)
class Track:
    """One person's pass at one camera, whatever the event version."""

    tenant_id: UUID
    site_id: UUID
    camera_id: UUID
    track_id: str
    first_seen: datetime
    last_seen: datetime
    model_id: str
    dim: int
    shots: tuple[Shot, ...]
    snapshot_key: str | None
    staff_by_edge: bool = False
    shots_from_v2: bool = True
    demographics: DemographicsEstimate | None = None

    @classmethod
    def from_v2(cls, data: FaceDetectedV2) -> Track:
        """v2, or v3 (v2 plus the edge's demographic estimate)."""
        return cls(
            data.tenant_id, data.site_id, data.camera_id, data.track_id, data.first_seen,
            data.last_seen, data.model_id, data.dim,
            tuple(Shot(np.asarray(s.embedding, np.float32), s.quality) for s in data.shots),
            data.snapshot_key,
            demographics=data.demographics if isinstance(data, FaceDetectedV3) else None,
        )  # fmt: skip

    @classmethod
    def from_v1(cls, data: FaceDetectedV1, event_id: str) -> Track:
        """v1 is one face in one frame: a track of one shot; its model is SFace by contract."""
        quality = data.det_score if data.det_score is not None else 0.5
        embedding = np.asarray(data.embedding, np.float32)
        return cls(
            data.tenant_id, data.site_id, data.camera_id, event_id, data.ts, data.ts,
            SEED_MODEL_ID, len(embedding), (Shot(embedding, quality),), data.snapshot_url,
            staff_by_edge=data.is_staff_local, shots_from_v2=False,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class EventKey:
    source: str
    event_id: str
    event_type: str
    digest: bytes | None = None
    """SHA-256 of the event's data: the same id with other data is a conflict, not a replay."""


@dataclass(frozen=True, slots=True)
class VisitOutcome:
    visit_id: UUID
    started_at: datetime
    ended_at: datetime
    opened: bool
    visit_count: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    sighting_id: UUID
    outcome: Outcome
    customer_id: UUID | None
    staff_id: UUID | None
    similarity: float | None
    is_new_customer: bool
    visit: VisitOutcome | None
    replayed: bool


def check_times(track: Track, now: datetime, settings: IdentitySettings) -> None:
    """A pass may not end in the future (beyond the allowed clock skew) nor last longer than
    ``max_pass_s``: either would corrupt dwell times and hourly counts."""
    skew = timedelta(seconds=settings.max_clock_skew_s)
    field = "data.last_seen" if track.shots_from_v2 else "data.ts"
    if track.last_seen > now + skew:
        raise InvalidInput(
            f"lies more than {settings.max_clock_skew_s}s in the future (check the edge clock)",
            field=field,
        )
    if track.last_seen - track.first_seen > timedelta(seconds=settings.max_pass_s):
        raise InvalidInput(
            f"a pass may last at most {settings.max_pass_s}s; send long stays in segments",
            field=field,
        )


def check_horizon(track: Track, now: datetime, horizon_days: int) -> None:
    """Events older than the tenant's replay horizon are refused, not counted into old reports."""
    if track.first_seen < now - timedelta(days=horizon_days):
        field = "data.first_seen" if track.shots_from_v2 else "data.ts"
        raise InvalidInput(
            f"older than this tenant's replay horizon of {horizon_days} days", field=field
        )


def expected_source(track: Track) -> str:
    return f"/tenants/{track.tenant_id}/sites/{track.site_id}/cameras/{track.camera_id}"


class IngestService:
    def __init__(self, db: Database, gallery: Gallery, settings: IdentitySettings) -> None:
        self._db = db
        self._gallery = gallery
        self._settings = settings
        self._gallery_sizes: dict[UUID, tuple[float, int, Thresholds]] = {}

    def check(
        self, principal: Principal, key: EventKey, track: Track, now: datetime | None = None
    ) -> None:
        """Everything that makes an event permanently unacceptable, before any work is done."""
        principal.require_role(*INGEST_ROLES)
        principal.require_tenant(track.tenant_id)
        if principal.role is Role.WORKER:
            principal.require_camera(track.site_id, track.camera_id)
        if key.source != expected_source(track):
            raise InvalidInput(
                f"source must be {expected_source(track)} for this tenant, site and camera",
                field="source",
            )
        check_times(track, now or datetime.now(UTC), self._settings)
        if track.snapshot_key is not None:
            require_camera_key(
                track.snapshot_key, track.tenant_id, track.site_id, track.camera_id,
                "data.snapshot_key" if track.shots_from_v2 else "data.snapshot_url",
            )  # fmt: skip
        if track.model_id != self._gallery.model_id or track.dim != self._gallery.dim:
            raise InvalidInput(
                f"embeddings of model {track.model_id} ({track.dim}-D) do not belong in this "
                f"gallery ({self._gallery.model_id}, {self._gallery.dim}-D)",
                field="data.model_id",
            )

    async def ingest(self, principal: Principal, key: EventKey, track: Track) -> IngestResult:
        self.check(principal, key, track)
        scope = principal.db_scope(track.tenant_id)
        async with self._db.transaction(scope) as conn:
            stored = await _stored_result(conn, track.tenant_id, key)
            if stored is not None:
                return stored
            site = await conn.fetchrow(
                "SELECT s.visit_window_s, t.replay_horizon_days, t.demographics_enabled "
                "FROM cameras c "
                "JOIN sites s ON s.id = c.site_id JOIN tenants t ON t.id = s.tenant_id "
                "WHERE c.id = $1 AND c.site_id = $2",
                track.camera_id,
                track.site_id,
            )
            if site is None:
                raise InvalidInput("unknown camera at this site", field="data.camera_id")
            check_horizon(track, datetime.now(UTC), site["replay_horizon_days"])
            excluded = await _busy_people(conn, track)

        decision = await self._decide(track, excluded, scope)
        new_views: list[GalleryRow] = []
        dropped: list[UUID] = []
        try:
            async with self._db.transaction(scope) as conn:
                sighting_id = await conn.fetchval(
                    "INSERT INTO sightings (tenant_id, site_id, camera_id, ce_source, ce_id, "
                    "ce_type, captured_at, last_seen_at, track_id, decision, similarity, quality, "
                    "snapshot_key, ce_digest) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
                    "$14) "
                    "ON CONFLICT (tenant_id, ce_source, ce_id) DO NOTHING RETURNING id",
                    track.tenant_id, track.site_id, track.camera_id, key.source, key.event_id,
                    key.event_type, track.first_seen, track.last_seen, track.track_id,
                    decision.outcome.value, decision.similarity,
                    max(s.quality for s in track.shots), track.snapshot_key, key.digest,
                )  # fmt: skip
                if sighting_id is None:  # a concurrent delivery of the same event won the race
                    replay = await _stored_result(conn, track.tenant_id, key)
                    assert replay is not None
                    return replay
                result = await self._apply(
                    conn, track, decision, sighting_id, timedelta(seconds=site["visit_window_s"]),
                    new_views, dropped,
                )  # fmt: skip
                if track.demographics is not None and site["demographics_enabled"]:
                    await _record_demographics(conn, track.demographics, sighting_id, result)
                await self._gallery.insert(new_views)
        except BaseException:
            if new_views:  # the transaction did not commit: take back the vectors it added
                await _quietly_delete(
                    self._gallery, track.tenant_id, [r.view_id for r in new_views]
                )
            raise
        if dropped:
            await _quietly_delete(self._gallery, track.tenant_id, dropped)
        logger.info(
            "sighting %s tenant=%s site=%s decision=%s views+%d-%d",
            sighting_id, track.tenant_id, track.site_id, decision.outcome, len(new_views), len(dropped),
        )  # fmt: skip
        return result

    async def _decide(self, track: Track, excluded: frozenset[UUID], scope: DbScope) -> Decision:
        if track.staff_by_edge:
            return Decision(Outcome.STAFF, None, None)
        vectors = np.stack([s.embedding for s in track.shots])
        hits = await self._gallery.search(track.tenant_id, vectors, self._settings.top_k)
        people = {h.person_id for per in hits for h in per}
        alive = await self._existing_people(track.tenant_id, people, scope)
        shots = [[h.candidate() for h in per if h.person_id in alive] for per in hits]
        thresholds = await self._thresholds(track.tenant_id, scope)
        return decide(shots, self._settings, excluded, thresholds)

    async def _thresholds(self, tenant_id: UUID, scope: DbScope) -> Thresholds:
        """The open-set thresholds for the tenant's gallery sizes, recounted once a minute or
        every ``GALLERY_SIZE_EVERY`` events of the tenant, whichever comes first (a busy new
        store's gallery grows fast)."""
        now = time.monotonic()
        cached = self._gallery_sizes.get(tenant_id)
        if cached is not None and cached[0] > now and cached[1] < GALLERY_SIZE_EVERY:
            self._gallery_sizes[tenant_id] = (cached[0], cached[1] + 1, cached[2])
            return cached[2]
        async with self._db.transaction(scope) as conn:
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE person_kind = 'customer') AS customers, "
                "count(*) FILTER (WHERE person_kind = 'staff') AS staff FROM person_embeddings"
            )
        assert row is not None
        thresholds = Thresholds.for_gallery(row["customers"], row["staff"], self._settings)
        self._gallery_sizes[tenant_id] = (now + GALLERY_SIZE_TTL_S, 0, thresholds)
        return thresholds

    async def _existing_people(
        self, tenant_id: UUID, people: set[UUID], scope: DbScope
    ) -> set[UUID]:
        """Gallery hits whose person still exists (vectors outlive an aborted write or an erase)."""
        if not people:
            return set()
        async with self._db.transaction(scope) as conn:
            rows = await conn.fetch(
                "SELECT id FROM customers WHERE id = ANY($1::uuid[]) "
                "UNION ALL SELECT id FROM staff WHERE id = ANY($1::uuid[]) AND active",
                list(people),
            )
        return {r["id"] for r in rows}

    async def _apply(
        self,
        conn: Connection,
        track: Track,
        decision: Decision,
        sighting_id: UUID,
        window: timedelta,
        new_views: list[GalleryRow],
        dropped: list[UUID],
    ) -> IngestResult:
        if decision.outcome is Outcome.STAFF:
            await conn.execute(
                "UPDATE sightings SET staff_id = $2 WHERE id = $1", sighting_id, decision.person_id
            )
            return IngestResult(sighting_id, Outcome.STAFF, None, decision.person_id,
                                decision.similarity, False, None, False)  # fmt: skip

        if decision.outcome is Outcome.NEW:
            customer_id = await conn.fetchval(
                "INSERT INTO customers (tenant_id, first_seen_at, last_seen_at, first_site_id, "
                "visit_count) VALUES ($1, $2, $3, $4, 0) RETURNING id",
                track.tenant_id, track.first_seen, track.last_seen, track.site_id,
            )  # fmt: skip
            latest = None
        else:
            assert decision.person_id is not None
            customer_id = decision.person_id
            await conn.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", customer_id)
            row = await conn.fetchrow(
                "SELECT id, started_at, ended_at FROM visits WHERE customer_id = $1 "
                "AND site_id = $2 ORDER BY ended_at DESC LIMIT 1 FOR UPDATE",
                customer_id, track.site_id,
            )  # fmt: skip
            latest = OpenVisit(row["id"], row["started_at"], row["ended_at"]) if row else None

        change = visit_change(latest, track.first_seen, track.last_seen, window)
        if change.action is VisitAction.EXTEND:
            visit_id = await conn.fetchval(
                "UPDATE visits SET started_at = $2, ended_at = $3, "
                "sighting_count = sighting_count + 1, updated_at = now() WHERE id = $1 RETURNING id",
                change.visit_id, change.started_at, change.ended_at,
            )  # fmt: skip
            visits = await conn.fetchval(
                "UPDATE customers SET last_seen_at = greatest(last_seen_at, $2), "
                "first_seen_at = least(first_seen_at, $3), updated_at = now() "
                "WHERE id = $1 RETURNING visit_count",
                customer_id, track.last_seen, track.first_seen,
            )  # fmt: skip
        else:
            visit_id = await conn.fetchval(
                "INSERT INTO visits (tenant_id, site_id, customer_id, started_at, ended_at, is_new) "
                "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                track.tenant_id, track.site_id, customer_id, change.started_at, change.ended_at,
                decision.outcome is Outcome.NEW,
            )  # fmt: skip
            visits = await conn.fetchval(
                "UPDATE customers SET visit_count = visit_count + 1, "
                "last_seen_at = greatest(last_seen_at, $2), "
                "first_seen_at = least(first_seen_at, $3), updated_at = now() "
                "WHERE id = $1 RETURNING visit_count",
                customer_id, track.last_seen, track.first_seen,
            )  # fmt: skip
        await conn.execute(
            "UPDATE sightings SET customer_id = $2, visit_id = $3, opened_visit = $4 WHERE id = $1",
            sighting_id, customer_id, visit_id, change.action is VisitAction.OPEN,
        )  # fmt: skip
        # The statistics of the visit's hour (and the hour it moved from) are now stale: marked in
        # this transaction, so no committed visit can be missed by the reports.
        moved_from = latest.started_at if latest and change.action is VisitAction.EXTEND else None
        await mark_dirty(conn, track.site_id, change.started_at, *filter(None, [moved_from]))
        await self._update_views(conn, track, customer_id, new_views, dropped)
        return IngestResult(
            sighting_id, decision.outcome, customer_id, None, decision.similarity,
            decision.outcome is Outcome.NEW,
            VisitOutcome(visit_id, change.started_at, change.ended_at,
                         change.action is VisitAction.OPEN, visits),
            False,
        )  # fmt: skip

    async def _update_views(
        self,
        conn: Connection,
        track: Track,
        customer_id: UUID,
        new_views: list[GalleryRow],
        dropped: list[UUID],
    ) -> None:
        rows = await conn.fetch(
            "SELECT id, quality, embedding FROM person_embeddings "
            "WHERE customer_id = $1 AND embedding IS NOT NULL",
            customer_id,
        )
        stored = [
            View(r["id"], np.frombuffer(r["embedding"], "<f4"), float(r["quality"] or 0))
            for r in rows
        ]
        offered = [(s.embedding, s.quality) for s in track.shots]
        update = choose_views(stored, offered, self._settings)
        for index in update.add:
            view_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO person_embeddings (id, tenant_id, person_kind, customer_id, model_id, "
                "dim, quality, source, snapshot_key, embedding) "
                "VALUES ($1, $2, 'customer', $3, $4, $5, $6, 'track', $7, $8)",
                view_id, track.tenant_id, customer_id, track.model_id, track.dim,
                track.shots[index].quality, track.snapshot_key,
                track.shots[index].embedding.astype("<f4").tobytes(),
            )  # fmt: skip
            new_views.append(GalleryRow(view_id, track.tenant_id, customer_id,
                                        PersonKind.CUSTOMER, track.shots[index].embedding))  # fmt: skip
        if update.remove:
            await conn.execute(
                "DELETE FROM person_embeddings WHERE id = ANY($1::uuid[])", list(update.remove)
            )
            dropped.extend(update.remove)


async def _record_demographics(
    conn: Connection, estimate: DemographicsEstimate, sighting_id: UUID, result: IngestResult
) -> None:
    """The edge's label and band on the sighting; the customer's evidence grows by it and their
    label and band are derived anew (staff sightings keep nothing)."""
    if result.customer_id is None:
        return
    await conn.execute(
        "UPDATE sightings SET gender = $2, age_band = $3 WHERE id = $1",
        sighting_id, estimate.gender, estimate.age_band,
    )  # fmt: skip
    row = await conn.fetchrow(
        "UPDATE customers SET gender_score = gender_score + $2, age_band_votes = CASE "
        "WHEN $3::text IS NULL THEN age_band_votes ELSE jsonb_set(age_band_votes, ARRAY[$3::text], "
        "to_jsonb(coalesce((age_band_votes ->> $3::text)::int, 0) + 1)) END "
        "WHERE id = $1 RETURNING gender_score, age_band_votes",
        result.customer_id,
        signed_evidence(estimate.gender, estimate.gender_confidence),
        estimate.age_band,
    )
    assert row is not None  # the customer row is locked by this transaction
    gender, band = person_demographics(row["gender_score"], row["age_band_votes"])
    await conn.execute(
        "UPDATE customers SET gender = $2, age_band = $3 WHERE id = $1",
        result.customer_id, gender, band,
    )  # fmt: skip


async def _busy_people(conn: Connection, track: Track) -> frozenset[UUID]:
    """People seen at this camera by another track during this track's time: not this person."""
    rows = await conn.fetch(
        "SELECT DISTINCT coalesce(customer_id, staff_id) AS person FROM sightings "
        "WHERE camera_id = $1 AND track_id <> $2 AND captured_at <= $4 AND last_seen_at >= $3 "
        "AND coalesce(customer_id, staff_id) IS NOT NULL",
        track.camera_id, track.track_id, track.first_seen, track.last_seen,
    )  # fmt: skip
    return frozenset(r["person"] for r in rows)


async def _stored_result(conn: Connection, tenant_id: UUID, key: EventKey) -> IngestResult | None:
    row: Record | None = await conn.fetchrow(
        "SELECT s.id, s.decision, s.customer_id, s.staff_id, s.similarity, s.visit_id, "
        "s.opened_visit AS opened, s.ce_digest, v.started_at, v.ended_at, c.visit_count "
        "FROM sightings s LEFT JOIN visits v ON v.id = s.visit_id "
        "LEFT JOIN customers c ON c.id = s.customer_id "
        "WHERE s.tenant_id = $1 AND s.ce_source = $2 AND s.ce_id = $3",
        tenant_id, key.source, key.event_id,
    )  # fmt: skip
    if row is None:
        return None
    if key.digest is not None and row["ce_digest"] is not None and row["ce_digest"] != key.digest:
        raise Conflict(
            f"event id {key.event_id!r} from this source was already counted with other data; "
            "a new pass needs a new id",
            field="id",
        )
    visit = None
    if row["visit_id"] is not None:
        visit = VisitOutcome(row["visit_id"], row["started_at"], row["ended_at"],
                             bool(row["opened"]), row["visit_count"] or 1)  # fmt: skip
    outcome = Outcome(row["decision"])
    return IngestResult(
        row["id"], outcome, row["customer_id"], row["staff_id"], row["similarity"],
        outcome is Outcome.NEW, visit, True,
    )  # fmt: skip


async def _quietly_delete(gallery: Gallery, tenant_id: UUID, view_ids: list[UUID]) -> None:
    try:
        await gallery.delete_views(tenant_id, view_ids)
    except VisitlensError:
        logger.warning("could not delete %d gallery views of tenant %s", len(view_ids), tenant_id)
