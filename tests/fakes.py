"""In-memory fakes of the ports (``visitlens.ports`` and the use-cases' own units of work).

They keep the contracts the adapters keep — a unit of work commits whole or not at all, a
savepoint undoes only its own part, the gallery only answers within a tenant, an absent object is
NotFound — so the use-cases' decisions can be tested in milliseconds without the stack. What they
cannot show (SQL, row-level security, concurrency between instances) the integration tests do.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable, Sequence, Set
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import numpy as np

from visitlens.auth.principal import Principal
from visitlens.contracts import DemographicsEstimate
from visitlens.errors import NotFound, PayloadTooLarge, TransientError
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
from visitlens.persons.common import Customer, MergeRecord, MovedView, VisitRef
from visitlens.ports import DbScope, GalleryRow, Hit, Nearest, PersonKind, StoredObject
from visitlens.retention.purge import TenantRetention
from visitlens.staff.enrollment import StaffImage
from visitlens.vision.detection import Detection
from visitlens.vision.pipeline import Face
from visitlens.vision.quality import Quality, Reason
from visitlens.vision.types import Floats

# --- clock ----------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.instant = now or datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.instant

    def advance(self, **delta: float) -> None:
        self.instant += timedelta(**delta)


# --- gallery --------------------------------------------------------------------------------------


class FakeGallery:
    """Exact search over the stored rows of one embedding space, tenant by tenant."""

    def __init__(self, model_id: str = "sface-2021dec", dim: int = 128) -> None:
        self.model_id = model_id
        self.dim = dim
        self.rows: dict[UUID, GalleryRow] = {}
        self.fail_next_insert = False
        self.searches = 0
        self.discarded: list[UUID] = []

    async def search(
        self, tenant_id: UUID, vectors: Floats, top_k: int, kind: PersonKind | None = None
    ) -> list[list[Hit]]:
        self.searches += 1
        rows = [r for r in self.rows.values()
                if r.tenant_id == tenant_id and (kind is None or r.kind is kind)]  # fmt: skip
        out = []
        for vector in np.atleast_2d(vectors):
            scored = sorted(
                (Hit(r.view_id, r.person_id, r.kind, float(np.clip(r.embedding @ vector, -1, 1)))
                 for r in rows),
                key=lambda h: h.similarity, reverse=True,
            )  # fmt: skip
            out.append(scored[:top_k])
        return out

    async def nearest_views(
        self, tenant_id: UUID, vectors: Floats, top_k: int
    ) -> list[list[Nearest]]:
        hits = await self.search(tenant_id, vectors, top_k)
        return [[Nearest(h.view_id, h.similarity) for h in per] for per in hits]

    async def insert(self, rows: Sequence[GalleryRow]) -> None:
        if self.fail_next_insert and rows:
            self.fail_next_insert = False
            raise TransientError("gallery unavailable (fake)")
        for row in rows:
            self.rows[row.view_id] = row

    async def delete_person(self, tenant_id: UUID, person_id: UUID) -> int:
        gone = [v for v, r in self.rows.items()
                if r.tenant_id == tenant_id and r.person_id == person_id]  # fmt: skip
        for view_id in gone:
            del self.rows[view_id]
        return len(gone)

    async def delete_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> int:
        gone = [v for v in view_ids if v in self.rows and self.rows[v].tenant_id == tenant_id]
        for view_id in gone:
            del self.rows[view_id]
        return len(gone)

    def discard_views(self, tenant_id: UUID, view_ids: Sequence[UUID]) -> None:
        self.discarded.extend(view_ids)
        for view_id in view_ids:
            if view_id in self.rows and self.rows[view_id].tenant_id == tenant_id:
                del self.rows[view_id]

    def people(self, tenant_id: UUID) -> set[UUID]:
        return {r.person_id for r in self.rows.values() if r.tenant_id == tenant_id}


# --- object store ---------------------------------------------------------------------------------


class FakeObjectStore:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, datetime]] = {}
        self.fail_deletes = False

    async def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self.objects[(bucket, key)] = (data, datetime.now(UTC))

    async def read(self, bucket: str, key: str, limit: int | None = None) -> bytes:
        if (bucket, key) not in self.objects:
            raise NotFound(f"object {key} not found")
        data = self.objects[(bucket, key)][0]
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(f"object exceeds the {limit}-byte limit")
        return data

    async def presign_put(self, bucket: str, key: str, ttl: timedelta) -> str:
        return f"https://objects.test/{bucket}/{key}?ttl={int(ttl.total_seconds())}"

    async def delete(self, bucket: str, keys: Sequence[str]) -> None:
        if self.fail_deletes and keys:
            raise TransientError(f"{len(keys)} objects could not be deleted")
        for key in keys:
            self.objects.pop((bucket, key), None)

    async def list(self, bucket: str, prefix: str) -> list[StoredObject]:
        return [StoredObject(k, at) for (b, k), (_, at) in sorted(self.objects.items())
                if b == bucket and k.startswith(prefix)]  # fmt: skip

    async def bucket_exists(self, bucket: str) -> bool:
        return True

    def keys(self, bucket: str) -> set[str]:
        return {k for b, k in self.objects if b == bucket}


# --- ingest's unit of work ------------------------------------------------------------------------


@dataclass
class IngestState:
    """What PostgreSQL holds for ingest, as plain dicts."""

    cameras: dict[UUID, CameraSite] = field(default_factory=dict)
    staff: dict[UUID, bool] = field(default_factory=dict)
    customers: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    visits: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    sightings: dict[tuple[UUID, str, str], dict[str, Any]] = field(default_factory=dict)
    views: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    """Embeddings as little-endian float32 bytes, as PostgreSQL keeps them."""
    dirty: set[tuple[UUID, datetime]] = field(default_factory=set)
    inactive: set[UUID] = field(default_factory=set)
    suggestions: dict[tuple[UUID, UUID], float] = field(default_factory=dict)
    """Principals (API keys, users) revoked or disabled, or of a deactivated tenant."""


class FakeIngestStore:
    """Units of work over :class:`IngestState`: a copy is worked on and replaces the state at
    commit; an exception discards it (nothing of the unit happened)."""

    def __init__(self) -> None:
        self.state = IngestState()
        self.commits = 0
        self.units: list[FakeIngestUnit] = []
        """Every unit of work begun, committed or not."""

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[FakeIngestUnit]:
        assert scope.tenant_id is not None, "ingest always runs in one tenant's scope"
        unit = FakeIngestUnit(copy.deepcopy(self.state), scope.tenant_id)
        self.units.append(unit)
        yield unit
        self.state = unit.state
        self.commits += 1


class FakeIngestUnit:
    def __init__(self, state: IngestState, tenant_id: UUID) -> None:
        self.state = state
        self.tenant_id = tenant_id
        self.surveys = 0
        self.savepoints = 0

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
        self.surveys += 1
        # the bound of each track's busy-people range, computed as the PostgreSQL adapter does
        # (an instant no border check bounded would overflow here, as it did there)
        _earliest = [t.first_seen - max_pass for t in tracks]
        state = self.state
        cameras = {t.camera_id: state.cameras[t.camera_id] for t in tracks
                   if t.camera_id in state.cameras}  # fmt: skip
        owners: dict[UUID, tuple[UUID, PersonKind]] = {}
        for view_id in views:
            row = state.views.get(view_id)
            if row is None:
                continue
            if row["kind"] is PersonKind.STAFF and state.staff.get(row["staff_id"], False):
                owners[view_id] = (row["staff_id"], PersonKind.STAFF)
            elif row["kind"] is PersonKind.CUSTOMER and row["customer_id"] in state.customers:
                owners[view_id] = (row["customer_id"], PersonKind.CUSTOMER)
        return Survey(
            inactive={subject for _, subject in senders if subject in state.inactive},
            stored=self._stored_results(tenant_id, keys),
            cameras=cameras,
            busy=self._busy_people(tracks),
            owners=owners,
        )

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        self.savepoints += 1
        saved = copy.deepcopy(self.state)
        try:
            yield
        except BaseException:
            self.state = saved
            raise

    def _stored_results(
        self, tenant_id: UUID, keys: Sequence[EventKey]
    ) -> dict[tuple[str, str], StoredSighting]:
        out = {}
        for key in keys:
            row = self.state.sightings.get((tenant_id, key.source, key.event_id))
            if row is None:
                continue
            visit = None
            if row["visit_id"] is not None:
                v = self.state.visits[row["visit_id"]]
                count = self.state.customers[row["customer_id"]]["visit_count"]
                visit = VisitOutcome(row["visit_id"], v["started_at"], v["ended_at"],
                                     row["opened"], count or 1)  # fmt: skip
            out[(key.source, key.event_id)] = StoredSighting(
                row["id"], row["decision"], row["customer_id"], row["staff_id"],
                row["similarity"], row["digest"], visit,
            )  # fmt: skip
        return out

    def _busy_people(self, tracks: Sequence[Track]) -> list[frozenset[UUID]]:
        out = []
        for t in tracks:
            out.append(frozenset(
                s["customer_id"] or s["staff_id"] for s in self.state.sightings.values()
                if s["camera_id"] == t.camera_id and s["track_id"] != t.track_id
                and s["captured_at"] <= t.last_seen and s["last_seen_at"] >= t.first_seen
                and (s["customer_id"] or s["staff_id"]) is not None
            ))  # fmt: skip
        return out

    async def gallery_sizes(self) -> tuple[int, int]:
        kinds = [v["kind"] for v in self.state.views.values()]
        return kinds.count(PersonKind.CUSTOMER), kinds.count(PersonKind.STAFF)

    async def add_sighting(self, key: EventKey, track: Track, decision: Decision) -> UUID | None:
        at = (track.tenant_id, key.source, key.event_id)
        if at in self.state.sightings:
            return None
        sighting_id = uuid4()
        self.state.sightings[at] = {
            "id": sighting_id, "decision": decision.outcome.value, "customer_id": None,
            "staff_id": decision.person_id if decision.outcome is Outcome.STAFF else None,
            "similarity": decision.similarity, "digest": key.digest,
            "visit_id": None, "opened": False, "camera_id": track.camera_id,
            "track_id": track.track_id, "captured_at": track.first_seen,
            "last_seen_at": track.last_seen, "gender": None, "age_band": None,
        }  # fmt: skip
        return sighting_id

    def _sighting(self, sighting_id: UUID) -> dict[str, Any]:
        return next(s for s in self.state.sightings.values() if s["id"] == sighting_id)

    async def lock_customer(self, customer_id: UUID, site_id: UUID) -> LockedCustomer | None:
        if customer_id not in self.state.customers:
            return None
        views = [View(vid, np.frombuffer(v["embedding"], "<f4"), v["quality"])
                 for vid, v in self.state.views.items()
                 if v["customer_id"] == customer_id]  # fmt: skip
        mine = [(v["ended_at"], vid, v) for vid, v in self.state.visits.items()
                if v["customer_id"] == customer_id and v["site_id"] == site_id]  # fmt: skip
        if not mine:
            return LockedCustomer(None, views)
        _, visit_id, v = max(mine, key=lambda m: m[0])
        return LockedCustomer(OpenVisit(visit_id, v["started_at"], v["ended_at"]), views)

    async def record_pass(
        self, key: EventKey, track: Track, decision: Decision, write: CustomerPass
    ) -> tuple[UUID, int] | None:
        at = (track.tenant_id, key.source, key.event_id)
        if at in self.state.sightings:
            return None
        change, opened = write.change, write.change.action is VisitAction.OPEN
        if write.new_customer:
            self.state.customers[write.customer_id] = {
                "visit_count": 0, "first_seen_at": track.first_seen,
                "last_seen_at": track.last_seen, "gender_score": 0.0, "age_band_votes": {},
                "gender": None, "age_band": None,
            }  # fmt: skip
        customer = self.state.customers[write.customer_id]
        customer["last_seen_at"] = max(customer["last_seen_at"], track.last_seen)
        customer["first_seen_at"] = min(customer["first_seen_at"], track.first_seen)
        if opened:
            customer["visit_count"] += 1
            self.state.visits[write.visit_id] = {
                "customer_id": write.customer_id, "site_id": track.site_id,
                "started_at": change.started_at, "ended_at": change.ended_at,
                "is_new": write.new_customer, "sighting_count": 1,
            }  # fmt: skip
        else:
            visit = self.state.visits[write.visit_id]
            visit.update(started_at=change.started_at, ended_at=change.ended_at)
            visit["sighting_count"] += 1
        sighting_id = uuid4()
        self.state.sightings[at] = {
            "id": sighting_id, "decision": decision.outcome.value,
            "customer_id": write.customer_id, "staff_id": None,
            "similarity": decision.similarity, "digest": key.digest,
            "visit_id": write.visit_id, "opened": opened, "camera_id": track.camera_id,
            "track_id": track.track_id, "captured_at": track.first_seen,
            "last_seen_at": track.last_seen, "gender": None, "age_band": None,
        }  # fmt: skip
        for view_id in write.remove:
            self.state.views.pop(view_id, None)
        for view_id, shot in write.add:
            self.state.views[view_id] = {
                "customer_id": write.customer_id, "kind": PersonKind.CUSTOMER,
                "quality": shot.quality, "embedding": shot.embedding.astype("<f4").tobytes(),
            }  # fmt: skip
        if write.new_customer and decision.review and decision.review[0] in self.state.customers:
            self.state.suggestions[(write.customer_id, decision.review[0])] = decision.review[1]
        return sighting_id, int(customer["visit_count"])

    async def add_demographics(
        self, sighting_id: UUID, customer_id: UUID, estimate: DemographicsEstimate,
        evidence: float,
    ) -> tuple[float, dict[str, int]]:  # fmt: skip
        self._sighting(sighting_id).update(gender=estimate.gender, age_band=estimate.age_band)
        c = self.state.customers[customer_id]
        c["gender_score"] += evidence
        if estimate.age_band is not None:
            votes = c["age_band_votes"]
            votes[estimate.age_band] = votes.get(estimate.age_band, 0) + 1
        return c["gender_score"], dict(c["age_band_votes"])

    async def set_customer_demographics(
        self, customer_id: UUID, gender: str | None, band: str | None
    ) -> None:
        self.state.customers[customer_id].update(gender=gender, age_band=band)

    async def mark_dirty(self, marks: Sequence[tuple[UUID, datetime]]) -> None:
        for site_id, instant in marks:
            self.state.dirty.add((site_id, instant.replace(minute=0, second=0, microsecond=0)))


# --- purge's unit of work -------------------------------------------------------------------------


@dataclass
class SnapshotPointer:
    """A row (a sighting or a stored view) that points at a snapshot."""

    tenant_id: UUID
    key: str | None
    captured_at: datetime


class FakePurgeStore:
    def __init__(self) -> None:
        self.retention_days: dict[UUID, int] = {}
        self.pointers: list[SnapshotPointer] = []
        self.audit: list[tuple[UUID, str, dict[str, Any]]] = []
        self.runs: dict[UUID, datetime] = {}
        self.chain_problems: dict[UUID, int] = {}

    async def retention(self) -> list[TenantRetention]:
        return [TenantRetention(t, days, self.runs.get(t))
                for t, days in sorted(self.retention_days.items())]  # fmt: skip

    async def chain_verified(self, tenant_id: UUID, problems: int) -> None:
        self.chain_problems[tenant_id] = problems

    @asynccontextmanager
    async def unit(self, tenant_id: UUID) -> AsyncIterator[FakePurgeUnit]:
        saved = copy.deepcopy((self.pointers, self.audit, self.runs))
        unit = FakePurgeUnit(self, tenant_id)
        try:
            yield unit
        except BaseException:
            self.pointers, self.audit, self.runs = saved
            raise


class FakePurgeUnit:
    """Sees only its tenant's rows (as row-level security does)."""

    def __init__(self, store: FakePurgeStore, tenant_id: UUID) -> None:
        self._store = store
        self._tenant_id = tenant_id

    def _mine(self, cutoff: datetime) -> list[SnapshotPointer]:
        return [p for p in self._store.pointers
                if p.tenant_id == self._tenant_id and p.key is not None
                and p.captured_at < cutoff]  # fmt: skip

    async def expired_keys(self, cutoff: datetime, prefix: str) -> list[str]:
        return [p.key for p in self._mine(cutoff) if p.key is not None]

    async def clear_pointers(self, cutoff: datetime, prefix: str) -> int:
        mine = self._mine(cutoff)
        for pointer in mine:
            pointer.key = None
        return len(mine)

    async def audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        self._store.audit.append((self._tenant_id, action, details))

    async def finished(self, at: datetime, objects_deleted: int, survivors_remaining: int) -> None:
        self._store.runs[self._tenant_id] = at


# --- merging's and erasure's unit of work ---------------------------------------------------------


@dataclass
class PersonsState:
    customers: dict[UUID, Customer] = field(default_factory=dict)
    sightings: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    visits: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    views: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    merges: dict[UUID, MergeRecord] = field(default_factory=dict)
    marks: set[tuple[UUID, UUID]] = field(default_factory=set)
    audit: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    refreshed: list[tuple[UUID, datetime]] = field(default_factory=list)


class FakePersonsStore:
    """One tenant's persons; a unit works on a copy that replaces the state at commit."""

    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id = tenant_id
        self.state = PersonsState()

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[FakePersonsUnit]:
        assert scope.tenant_id == self.tenant_id, "another tenant's scope sees nothing here"
        unit = FakePersonsUnit(copy.deepcopy(self.state))
        yield unit
        self.state = unit.state

    # building a world
    def add_customer(self, first_seen: datetime, site_id: UUID) -> UUID:
        customer = Customer(uuid4(), first_seen, first_seen, site_id, 0, None, None, first_seen)
        self.state.customers[customer.id] = customer
        return customer.id

    def add_visit(self, customer: UUID, site_id: UUID, start: datetime, minutes: int = 10) -> UUID:
        visit_id = uuid4()
        c = self.state.customers[customer]
        is_new = not any(v["customer_id"] == customer for v in self.state.visits.values())
        end = start + timedelta(minutes=minutes)
        self.state.visits[visit_id] = {
            "customer_id": customer,
            "is_new": is_new,
            "site_id": site_id,
            "started_at": start,
            "ended_at": end,
        }
        self.state.customers[customer] = Customer(
            c.id, min(c.first_seen_at, start), max(c.last_seen_at, end), c.first_site_id,
            c.visit_count + 1, c.gender, c.age_band, c.created_at,
        )  # fmt: skip
        sighting = uuid4()
        self.state.sightings[sighting] = {"customer_id": customer, "visit_id": visit_id,
                                          "snapshot_key": None}  # fmt: skip
        return visit_id

    def add_view(
        self, customer: UUID, embedding: np.ndarray, snapshot_key: str | None = None
    ) -> UUID:
        view_id = uuid4()
        self.state.views[view_id] = {"customer_id": customer, "snapshot_key": snapshot_key,
                                     "embedding": embedding.astype("<f4").tobytes()}  # fmt: skip
        return view_id


class FakePersonsUnit:
    def __init__(self, state: PersonsState) -> None:
        self.state = state

    async def lock_customers(self, ids: Sequence[UUID]) -> dict[UUID, Customer]:
        return {
            i: self.state.customers[i] for i in sorted(ids, key=str) if i in self.state.customers
        }

    async def marked_distinct(self, a: UUID, b: UUID) -> bool:
        return (a, b) in self.state.marks

    async def add_distinct_mark(self, a: UUID, b: UUID, by: UUID) -> bool:
        new = (a, b) not in self.state.marks
        self.state.marks.add((a, b))
        return new

    async def visits_of(self, people: Sequence[UUID]) -> list[VisitRef]:
        return [VisitRef(vid, v["customer_id"], v["is_new"], v["site_id"], v["started_at"])
                for vid, v in self.state.visits.items() if v["customer_id"] in people]  # fmt: skip

    def _move(
        self, rows: dict[UUID, dict[str, Any]], source: UUID, target: UUID,
        only: Sequence[UUID] | None,
    ) -> list[UUID]:  # fmt: skip
        moved = [i for i, r in rows.items()
                 if r["customer_id"] == source and (only is None or i in only)]  # fmt: skip
        for i in moved:
            rows[i]["customer_id"] = target
        return moved

    async def move_sightings(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[UUID]:
        return self._move(self.state.sightings, source, target, only)

    async def move_visits(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> None:
        self._move(self.state.visits, source, target, only)

    async def move_views(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[MovedView]:
        moved = self._move(self.state.views, source, target, only)
        return [MovedView(i, self.state.views[i]["embedding"]) for i in moved]

    def _replace(self, customer: UUID, **changes: Any) -> None:
        c = self.state.customers[customer]
        values = {f: getattr(c, f) for f in Customer.__slots__}
        self.state.customers[customer] = Customer(**{**values, **changes})

    async def absorb(self, kept: UUID, merged: Customer) -> None:
        k = self.state.customers[kept]
        self._replace(
            kept, gender=k.gender or merged.gender, age_band=k.age_band or merged.age_band,
            first_site_id=k.first_site_id or merged.first_site_id,
            first_seen_at=min(k.first_seen_at, merged.first_seen_at),
            last_seen_at=max(k.last_seen_at, merged.last_seen_at),
        )  # fmt: skip

    async def delete_customer(self, customer: UUID) -> None:
        del self.state.customers[customer]

    async def recompute_customer(self, customer: UUID) -> None:
        mine = sorted(((v["started_at"], str(i), i) for i, v in self.state.visits.items()
                       if v["customer_id"] == customer))  # fmt: skip
        if not mine:
            return
        for _, _, i in mine:
            self.state.visits[i]["is_new"] = i == mine[0][2]
        c = self.state.customers[customer]
        first = min(c.first_seen_at, mine[0][0])
        last = max(self.state.visits[i]["ended_at"] for _, _, i in mine)
        self._replace(customer, first_seen_at=first, last_seen_at=max(last, first),
                      visit_count=len(mine))  # fmt: skip

    async def add_merge(
        self, kept: Customer, merged: Customer, sighting_ids: Sequence[UUID],
        visits: list[dict[str, Any]], view_ids: Sequence[UUID], by: UUID,
    ) -> UUID:  # fmt: skip
        merge_id = uuid4()
        self.state.merges[merge_id] = MergeRecord(
            merge_id, kept.id, merged.id, merged.snapshot(), kept.snapshot(), list(sighting_ids),
            copy.deepcopy(visits), list(view_ids), False,
        )  # fmt: skip
        return merge_id

    async def merge_record(self, merge_id: UUID) -> MergeRecord | None:
        return self.state.merges.get(merge_id)

    async def restore_customer(self, customer: UUID, snapshot: dict[str, Any]) -> None:
        self.state.customers[customer] = Customer(
            customer, datetime.fromisoformat(snapshot["first_seen_at"]),
            datetime.fromisoformat(snapshot["last_seen_at"]),
            UUID(snapshot["first_site_id"]) if snapshot["first_site_id"] else None,
            int(snapshot["visit_count"]), snapshot["gender"], snapshot["age_band"],
            datetime.fromisoformat(snapshot["created_at"]),
        )  # fmt: skip

    async def restore_labels(self, customer: UUID, snapshot: dict[str, Any]) -> None:
        self._replace(customer, gender=snapshot["gender"], age_band=snapshot["age_band"],
                      first_seen_at=datetime.fromisoformat(snapshot["first_seen_at"]))  # fmt: skip

    async def set_visit_new(self, visit_id: UUID, is_new: bool) -> None:
        self.state.visits[visit_id]["is_new"] = is_new

    async def recount(self, customer: UUID) -> None:
        c = self.state.customers[customer]
        mine = [v for v in self.state.visits.values() if v["customer_id"] == customer]
        last = max([c.first_seen_at, *(v["ended_at"] for v in mine)])
        self._replace(customer, visit_count=len(mine), last_seen_at=last)

    async def mark_undone(self, merge_id: UUID) -> None:
        record = self.state.merges[merge_id]
        values = {f: getattr(record, f) for f in MergeRecord.__slots__}
        self.state.merges[merge_id] = MergeRecord(**{**values, "undone": True})

    async def visit_starts(self, visit_ids: Sequence[UUID]) -> list[tuple[UUID, datetime]]:
        return [(self.state.visits[i]["site_id"], self.state.visits[i]["started_at"])
                for i in visit_ids if i in self.state.visits]  # fmt: skip

    async def snapshot_keys(self, customer: UUID) -> set[str]:
        rows = [*self.state.sightings.values(), *self.state.views.values()]
        return {r["snapshot_key"] for r in rows
                if r["customer_id"] == customer and r["snapshot_key"]}  # fmt: skip

    async def erase_customer(self, customer: UUID) -> tuple[int, int]:
        s = self.state
        sightings = [i for i, r in s.sightings.items() if r["customer_id"] == customer]
        views = [i for i, r in s.views.items() if r["customer_id"] == customer]
        for i in sightings:
            del s.sightings[i]
        for i in views:
            del s.views[i]
        s.merges = {i: m for i, m in s.merges.items() if customer not in (m.kept_id, m.merged_id)}
        s.marks = {m for m in s.marks if customer not in m}
        del s.customers[customer]
        for v in s.visits.values():
            if v["customer_id"] == customer:
                v["customer_id"] = None
        return len(sightings), len(views)

    async def refresh_stats(self, visits: Iterable[tuple[UUID, datetime]]) -> None:
        self.state.refreshed.extend(visits)

    async def audit(
        self, principal: Principal, action: str, target_type: str, target_id: UUID | str,
        details: dict[str, Any],
    ) -> None:  # fmt: skip
        self.state.audit.append((action, str(target_id), details))


# --- faces and staff enrolment's unit of work -----------------------------------------------------


def fake_face(embedding: np.ndarray | None, *, usable: bool = True, score: float = 0.8) -> Face:
    reasons = () if usable else (Reason.BLURRED,)
    landmarks = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], np.float32)
    return Face(Detection((10.0, 10.0, 80.0, 100.0), 0.99, landmarks), Quality(score, reasons),
                np.zeros((112, 112, 3), np.uint8), embedding)  # fmt: skip


class FakeAnalyzer:
    """Answers each photo (by its bytes' decoded size) with the faces a test scripted for it."""

    def __init__(self) -> None:
        self.next_faces: list[Face] = []

    def analyze(self, image: np.ndarray, *, embed_unusable: bool = False) -> list[Face]:
        return list(self.next_faces)


@dataclass
class StaffState:
    staff: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    images: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    views: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    audit: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class FakeStaffStore:
    def __init__(self, tenant_id: UUID) -> None:
        self.tenant_id = tenant_id
        self.state = StaffState()

    @asynccontextmanager
    async def unit(self, scope: DbScope) -> AsyncIterator[FakeStaffUnit]:
        assert scope.tenant_id == self.tenant_id
        unit = FakeStaffUnit(copy.deepcopy(self.state))
        yield unit
        self.state = unit.state

    def add_staff(self, name: str, *, active: bool = True) -> UUID:
        staff_id = uuid4()
        self.state.staff[staff_id] = {"display_name": name, "active": active}
        return staff_id


class FakeStaffUnit:
    def __init__(self, state: StaffState) -> None:
        self.state = state
        self._created = 0

    async def staff_exists(self, staff_id: UUID, *, lock: bool = False) -> bool:
        return staff_id in self.state.staff

    async def image_by_key(self, object_key: str) -> dict[str, Any] | None:
        return next((i for i in self.state.images.values() if i["object_key"] == object_key), None)

    async def add_view(
        self, view_id: UUID, staff_id: UUID, model_id: str, dim: int, quality: float,
        object_key: str, embedding: bytes,
    ) -> None:  # fmt: skip
        self.state.views[view_id] = {"staff_id": staff_id, "model_id": model_id,
                                     "quality": quality, "embedding": embedding}  # fmt: skip

    async def delete_view(self, view_id: UUID) -> None:
        self.state.views.pop(view_id, None)
        for image in self.state.images.values():
            if image["embedding_id"] == view_id:
                image["embedding_id"] = None

    def _of(self, staff_id: UUID) -> list[dict[str, Any]]:
        return [i for i in self.state.images.values() if i["staff_id"] == staff_id]

    async def has_primary(self, staff_id: UUID) -> bool:
        return any(i["is_primary"] for i in self._of(staff_id))

    async def clear_primary(self, staff_id: UUID) -> None:
        for image in self._of(staff_id):
            image["is_primary"] = False

    async def add_image(
        self, image_id: UUID, staff_id: UUID, object_key: str, primary: bool, quality: float,
        landmarks: list[list[float]], view_id: UUID,
    ) -> dict[str, Any]:  # fmt: skip
        self._created += 1
        row = {"id": image_id, "staff_id": staff_id, "object_key": object_key,
               "is_primary": primary, "quality": quality, "landmarks": landmarks,
               "embedding_id": view_id, "created": len(self.state.images)}  # fmt: skip
        self.state.images[image_id] = row
        return dict(row)

    async def delete_image(self, image_id: UUID, staff_id: UUID) -> dict[str, Any] | None:
        image = self.state.images.get(image_id)
        if image is None or image["staff_id"] != staff_id:
            return None
        return self.state.images.pop(image_id)

    async def promote_best(self, staff_id: UUID) -> None:
        mine = sorted(self._of(staff_id), key=lambda i: (-(i["quality"] or 0), i["created"]))
        if mine:
            mine[0]["is_primary"] = True

    async def set_primary(self, image_id: UUID, staff_id: UUID) -> dict[str, Any] | None:
        image = self.state.images.get(image_id)
        if image is None or image["staff_id"] != staff_id:
            return None
        image["is_primary"] = True
        return dict(image)

    async def image_keys(self, staff_id: UUID) -> list[str]:
        return [i["object_key"] for i in self._of(staff_id)]

    async def delete_staff(self, staff_id: UUID) -> None:
        del self.state.staff[staff_id]
        for image in self._of(staff_id):
            del self.state.images[image["id"]]
        for view_id in [v for v, row in self.state.views.items() if row["staff_id"] == staff_id]:
            del self.state.views[view_id]

    async def staff_views(self) -> int:
        return len(self.state.views)

    async def active_names(self, staff_ids: Sequence[UUID]) -> dict[UUID, str]:
        return {s: self.state.staff[s]["display_name"] for s in staff_ids
                if s in self.state.staff and self.state.staff[s]["active"]}  # fmt: skip

    async def images(self) -> list[StaffImage]:
        out = []
        for image in sorted(self.state.images.values(), key=lambda i: i["created"]):
            view = self.state.views.get(image["embedding_id"]) if image["embedding_id"] else None
            out.append(StaffImage(image["id"], image["staff_id"], image["object_key"],
                                  view["model_id"] if view else None, image["embedding_id"]))  # fmt: skip
        return out

    async def set_image_view(self, image_id: UUID, view_id: UUID, quality: float) -> None:
        self.state.images[image_id].update(embedding_id=view_id, quality=quality)

    async def audit(
        self, actor: Principal | None, action: str, target_id: UUID | None,
        details: dict[str, Any],
    ) -> None:  # fmt: skip
        self.state.audit.append((action, details))
