"""Ingest one face.detected event: scope and model checks, idempotency, match, and the customer,
visit, sighting and gallery updates, in one PostgreSQL transaction.

Exactly-once counting over at-least-once delivery: the sighting row, keyed by the CloudEvent's
(source, id) with a unique constraint, is inserted first in the transaction that changes the
visit; a replay (sequential or concurrent) finds it and gets the stored result back.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence, Set
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import numpy as np
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from visitlens.auth.principal import Principal, Role
from visitlens.config import IdentitySettings
from visitlens.contracts import (
    SEED_MODEL_ID,
    DemographicsEstimate,
    FaceDetectedV1,
    FaceDetectedV2,
    FaceDetectedV3,
)
from visitlens.errors import (
    Busy,
    Conflict,
    InvalidInput,
    TransientError,
    Unauthenticated,
    VisitlensError,
)
from visitlens.identity.decisions import (
    Candidate,
    Decision,
    OpenVisit,
    Outcome,
    Thresholds,
    View,
    VisitAction,
    VisitChange,
    choose_views,
    decide,
    visit_change,
)
from visitlens.identity.group_commit import GroupCommit
from visitlens.ports import Clock, DbScope, Gallery, GalleryRow, Nearest, PersonKind
from visitlens.tenancy.object_keys import require_camera_key
from visitlens.vision.demographics import person_demographics, signed_evidence
from visitlens.vision.types import Floats

logger = logging.getLogger(__name__)

INGEST_ROLES = (Role.WORKER, Role.TENANT_ADMIN)
BUSY_ATTEMPTS = 3
GALLERY_SIZE_TTL_S = 60.0
GALLERY_SIZE_EVERY = 32
GALLERY_SIZE_SHARE = 100
"""The gallery sizes behind the open-set thresholds are recounted after ``GALLERY_SIZE_TTL_S`` or
after as many events of a tenant as the larger of ``GALLERY_SIZE_EVERY`` and a
``GALLERY_SIZE_SHARE``-th of its gallery, whichever comes first: a new store's small gallery is
recounted often, a large one (whose count scans every view, ~30 ms at 175k) about once per 1 %
it could have grown — the thresholds move with the logarithm of its size."""


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
class Submission:
    """One event of a batch: its key and its pass."""

    key: EventKey
    track: Track


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


@dataclass(frozen=True, slots=True)
class CameraSite:
    """A camera's site and the site's and tenant's settings ingest needs."""

    site_id: UUID
    visit_window_s: int
    replay_horizon_days: int
    demographics_enabled: bool


@dataclass(frozen=True, slots=True)
class LockedCustomer:
    """A returning customer, locked for this unit of work: what ingest decides their pass by."""

    latest_visit: OpenVisit | None
    views: list[View]


@dataclass(frozen=True, slots=True)
class CustomerPass:
    """What a customer's pass writes besides its sighting, decided before anything is written:
    the ids of the rows it creates are chosen here, so the unit writes each row once."""

    customer_id: UUID
    new_customer: bool
    """A customer created by this pass (their first visit opens with it)."""
    change: VisitChange
    visit_id: UUID
    """The visit extended, or the id of the one opened."""
    add: Sequence[tuple[UUID, Shot]]
    """Shots of the track kept as the customer's views, each with its new view id."""
    remove: Sequence[UUID]
    """The customer's stored views they replace."""


@dataclass(frozen=True, slots=True)
class StoredSighting:
    """What an event already made (its sighting), for the answer to a replay."""

    sighting_id: UUID
    decision: str
    customer_id: UUID | None
    staff_id: UUID | None
    similarity: float | None
    digest: bytes | None
    visit: VisitOutcome | None


@dataclass(frozen=True, slots=True)
class Survey:
    """Everything a unit of work reads before it decides (one round trip)."""

    inactive: set[UUID]
    """Of the senders, those who may no longer act (key revoked, user disabled, tenant
    deactivated)."""
    stored: dict[tuple[str, str], StoredSighting]
    """The sightings the events already made, by (source, id)."""
    cameras: dict[UUID, CameraSite]
    busy: list[frozenset[UUID]]
    """Per track: people seen at its camera by another track during its time."""
    owners: dict[UUID, tuple[UUID, PersonKind]]
    """Of the gallery's hits, the views still kept, each with its person — a customer within the
    tenant's gallery scope (seen within ``returning_within_days``), or a staff member still
    active. Vectors outlive an aborted write, an erasure, a view replaced by
    a better one (deleted from the gallery a moment later) and a merge (the view now is the
    other person's): the database, read in this transaction, has the last word."""


class IngestUnit(Protocol):
    """The port of ingest's unit of work: everything one transaction reads and writes.

    All of a unit commits or none of it does; ``savepoint`` nests a unit that can fail alone."""

    def savepoint(self) -> AbstractAsyncContextManager[Any]: ...
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
        """The unit's reads before it decides: which ``senders`` (principal kind, subject) may no
        longer act, what the events (``keys``) already made, the ``tracks``' cameras and busy
        people (passes last at most ``max_pass``), and whose each of ``views`` is."""
        ...

    async def gallery_sizes(self) -> tuple[int, int]:
        """Stored views of (customers in the tenant's gallery scope, staff): the customers' count
        is of those seen within ``returning_within_days``, the only ones a pass may be linked
        to, so the open-set threshold follows the scope, not the tenant's lifetime."""
        ...

    async def add_sighting(self, key: EventKey, track: Track, decision: Decision) -> UUID | None:
        """A staff member's pass: the new sighting's id (naming the member); None if the event's
        sighting exists already."""
        ...

    async def lock_customer(self, customer_id: UUID, site_id: UUID) -> LockedCustomer | None:
        """Locks the customer (every change to their visits is serialised): their latest visit at
        the site and their stored views; None if they no longer exist."""
        ...

    async def record_pass(
        self, key: EventKey, track: Track, decision: Decision, write: CustomerPass
    ) -> tuple[UUID, int] | None:
        """A customer's pass (new or returning): its sighting, and, only if the event's sighting
        did not exist yet, everything ``write`` says, and a new customer's duplicates
        suggestion (``decision.review``, skipped if that customer is gone). The sighting's id and
        the customer's visit count after it; None if the event's sighting exists already
        (nothing is written)."""
        ...

    async def add_demographics(
        self,
        sighting_id: UUID,
        customer_id: UUID,
        estimate: DemographicsEstimate,
        evidence: float,
    ) -> tuple[float, dict[str, int]]:
        """The sighting's estimate kept, the customer's evidence grown: their gender score and
        age-band votes after it."""
        ...

    async def set_customer_demographics(
        self, customer_id: UUID, gender: str | None, band: str | None
    ) -> None: ...
    async def mark_dirty(self, marks: Sequence[tuple[UUID, datetime]]) -> None:
        """The report hours of these (site, instant) pairs are stale (the aggregate outbox),
        marked in one order whatever the order given: two units marking the same hours do not
        deadlock."""
        ...


class IngestStore(Protocol):
    def unit(self, scope: DbScope) -> AbstractAsyncContextManager[IngestUnit]: ...


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
    def __init__(
        self, store: IngestStore, gallery: Gallery, settings: IdentitySettings, clock: Clock
    ) -> None:
        self._store = store
        self._gallery = gallery
        self._settings = settings
        self._clock = clock
        self._gallery_sizes: dict[UUID, tuple[float, int, int, Thresholds]] = {}
        """Per tenant: when the count expires, events since, events it lasts, the thresholds."""
        self._recounts: dict[UUID, asyncio.Task[None]] = {}
        self._groups: GroupCommit[
            UUID, tuple[Principal, Submission], IngestResult | VisitlensError
        ] = GroupCommit(
            self._ingest_group,
            max_items=settings.group_max_events,
            slots=settings.groups_per_tenant,
        )

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
        check_times(track, now or self._clock.now(), self._settings)
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

    @property
    def groups(self) -> int:
        """Units of work the single events have run in so far."""
        return self._groups.groups

    async def ingest(self, principal: Principal, key: EventKey, track: Track) -> IngestResult:
        """One event: its result, or the error that refuses it.

        Checked alone, then worked in a group with the tenant's other events arriving meanwhile
        (group commit, :mod:`visitlens.identity.group_commit`): one gallery search and one
        transaction for the group, a result per event — exactly what a batch of them would give.
        An idle tenant's event is worked at once, alone.

        ``principal``: verified (signature, expiry); whether it may still act is read in the
        unit of work that records the event."""
        self.check(principal, key, track)
        outcome = await self._groups.submit(track.tenant_id, (principal, Submission(key, track)))
        if isinstance(outcome, VisitlensError):
            raise outcome
        return outcome

    async def ingest_many(
        self, principal: Principal, items: Sequence[Submission]
    ) -> list[IngestResult | VisitlensError]:
        """A batch, in order: one read transaction, one multi-vector gallery search and one write
        transaction for all of it, with a result or a refusal per event. A refusal changes
        nothing; a transient failure (database, gallery) raises and nothing of the batch counts,
        so the sender retries it whole (replays count nothing twice). ``principal``: as for
        :meth:`ingest`."""
        outcomes: list[IngestResult | VisitlensError | None] = [None] * len(items)
        now = self._clock.now()
        by_tenant: dict[UUID, list[int]] = {}
        for i, item in enumerate(items):
            try:
                self.check(principal, item.key, item.track, now)
            except VisitlensError as error:
                outcomes[i] = error
                continue
            by_tenant.setdefault(item.track.tenant_id, []).append(i)
        senders = [principal] * len(items)
        for tenant_id, indices in by_tenant.items():
            await self._ingest_checked(_Work(tenant_id, items, senders, indices, outcomes, now))
        return [o for o in outcomes if o is not None]

    async def _ingest_group(
        self, tenant_id: UUID, entries: Sequence[tuple[Principal, Submission]]
    ) -> list[IngestResult | VisitlensError]:
        """A group of one tenant's checked single events: a result or a refusal per event."""
        outcomes: list[IngestResult | VisitlensError | None] = [None] * len(entries)
        senders, items = [p for p, _ in entries], [s for _, s in entries]
        indices = list(range(len(items)))
        await self._ingest_checked(
            _Work(tenant_id, items, senders, indices, outcomes, self._clock.now())
        )
        return [o if o is not None else TransientError("not answered") for o in outcomes]

    async def _ingest_checked(self, work: _Work) -> None:
        """``work`` in one unit; if that unit fails for a reason other than a dependency's (a
        :class:`TransientError` — the database or the gallery down — would fail each event alike
        and is raised for all), every event is worked again in a unit of its own. So an event
        that breaks its unit (an input no check foresaw, a bug) fails alone, never its batch or
        group; its neighbours are answered as if it had not been sent."""
        try:
            await self._ingest_retrying(work)
        except TransientError:
            raise
        except Exception:
            if len(work.indices) == 1:
                raise
            logger.warning(
                "a unit of %d events of tenant %s failed; each is worked again alone",
                len(work.indices), work.tenant_id, exc_info=True,
            )  # fmt: skip
            for i in work.indices:
                work.outcomes[i] = None
                await self._ingest_alone(replace(work, indices=[i]))

    async def _ingest_alone(self, work: _Work) -> None:
        """One event in its own unit; whatever fails it becomes its outcome."""
        (i,) = work.indices
        try:
            await self._ingest_retrying(work)
        except VisitlensError as error:  # refused for its own reason, or a dependency's
            work.outcomes[i] = error
        except Exception:
            logger.exception(
                "event %s of tenant %s could not be worked", work.items[i].key.event_id,
                work.tenant_id,
            )  # fmt: skip
            work.outcomes[i] = VisitlensError("the event could not be processed")

    async def _ingest_retrying(self, work: _Work) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Busy),
            stop=stop_after_attempt(BUSY_ATTEMPTS),
            wait=wait_random(0.01, 0.1),
            reraise=True,
        ):
            with attempt:  # a deadlock victim is rolled back whole: run it again
                await self._ingest_tenant(work)

    async def _ingest_tenant(self, work: _Work) -> None:
        """The gallery first, outside any transaction: no connection or row lock is held while
        it answers (a replay's search is wasted, and rare). Then one unit of work for all of
        ``work``, optimistic: no savepoint per event (two round trips each). If an event is
        refused while it writes (rare: a conflicting copy arriving at once, a customer erased
        meanwhile), the unit is rolled back, that event gets its refusal, and the others run
        again, this time each in a savepoint: two units at most, whatever the events."""
        searched = await self._search([work.items[i].track for i in work.indices])
        indices, careful = list(work.indices), False
        while indices:
            try:
                await self._unit_of_work(work, indices, searched, careful)
                return
            except _Refusal as refusal:  # rolled back: nothing of this unit happened
                for i in indices:
                    work.outcomes[i] = None
                work.outcomes[refusal.index] = refusal.error
                indices = [i for i in indices if i != refusal.index]
                careful = True

    async def _unit_of_work(
        self, work: _Work, indices: list[int], searched: _Searched, careful: bool
    ) -> None:
        tenant_id, items, senders = work.tenant_id, work.items, work.senders
        outcomes, now = work.outcomes, work.now
        # Every event was checked against its own principal; the unit of work acts for the tenant
        # (ingest's writes name no actor: the sightings carry their source instead).
        scope = DbScope(tenant_id)
        position = {i: n for n, i in enumerate(work.indices)}
        batch = _BatchMemory()
        new_views: list[GalleryRow] = []
        dropped: list[UUID] = []
        dirty: list[tuple[UUID, datetime]] = []
        logged: list[tuple[int, Decision, int, int]] = []
        try:
            async with self._store.unit(scope) as unit:
                # Whoever sent them may still act (key not revoked, user not disabled, tenant
                # active), read where the events are recorded: a deactivation ends every token
                # at once, also for events already on their way in. Gallery hits count only as
                # views still kept, of their present people, read under this snapshot.
                survey = await unit.survey(
                    tenant_id,
                    [items[i].key for i in indices],
                    senders={(senders[i].kind.value, senders[i].subject) for i in indices},
                    tracks=[items[i].track for i in indices],
                    views=searched.views,
                    max_pass=timedelta(seconds=self._settings.max_pass_s),
                )
                busy = dict(zip(indices, survey.busy, strict=True))
                todo: list[int] = []
                for i in indices:
                    key, track = items[i].key, items[i].track
                    if senders[i].subject in survey.inactive:
                        outcomes[i] = Unauthenticated("account disabled or tenant deactivated")
                        continue
                    try:
                        replay = _replayed(survey.stored.get((key.source, key.event_id)), key)
                        if replay is not None:
                            outcomes[i] = replay
                            continue
                        site = survey.cameras.get(track.camera_id)
                        if site is None or site.site_id != track.site_id:
                            raise InvalidInput(
                                "unknown camera at this site", field="data.camera_id"
                            )
                        check_horizon(track, now, site.replay_horizon_days)
                    except VisitlensError as error:
                        outcomes[i] = error
                        continue
                    todo.append(i)
                if not todo:
                    return
                thresholds = await self._thresholds(tenant_id, unit)
                for i in todo:
                    key, track = items[i].key, items[i].track
                    if track.staff_by_edge:
                        decision = Decision(Outcome.STAFF, None, None)
                    else:
                        found = _candidates(searched.shots[position[i]], survey.owners)
                        shots = batch.extend(found, track, self._settings.top_k)
                        decision = decide(
                            shots, self._settings, busy[i] | batch.busy(track), thresholds
                        )
                    marks = (len(new_views), len(dropped), len(dirty))
                    try:
                        # careful: a savepoint per event, so a refusal undoes only its own
                        async with unit.savepoint() if careful and len(todo) > 1 else nullcontext():
                            result = await self._record(
                                unit, key, track, decision, survey.cameras[track.camera_id],
                                new_views, dropped, dirty,
                            )  # fmt: skip
                    except VisitlensError as error:
                        if len(todo) == 1 and isinstance(error, Busy | TransientError):
                            raise  # the unit again (Busy), or the sender again
                        if len(todo) == 1 or not careful:
                            raise _Refusal(i, error) from error  # undoes the whole unit
                        del new_views[marks[0] :], dropped[marks[1] :], dirty[marks[2] :]
                        outcomes[i] = error
                        continue
                    outcomes[i] = result
                    if not result.replayed:
                        batch.remember(track, result, new_views[marks[0] :])
                        logged.append(
                            (i, decision, len(new_views) - marks[0], len(dropped) - marks[1])
                        )
                await unit.mark_dirty(dirty)
                await self._gallery.insert(new_views)
        except BaseException:
            if new_views:  # the transaction did not commit: take back the vectors it added
                await _quietly_delete(self._gallery, tenant_id, [r.view_id for r in new_views])
            raise
        if dropped:  # housekeeping, off the answer's path (see Gallery.discard_views)
            self._gallery.discard_views(tenant_id, dropped)
        for i, decision, added, removed in logged:
            logger.info(
                "sighting %s tenant=%s site=%s decision=%s views+%d-%d",
                _sighting_of(outcomes[i]), tenant_id, items[i].track.site_id, decision.outcome,
                added, removed,
            )  # fmt: skip

    async def _record(
        self,
        unit: IngestUnit,
        key: EventKey,
        track: Track,
        decision: Decision,
        site: CameraSite,
        new_views: list[GalleryRow],
        dropped: list[UUID],
        dirty: list[tuple[UUID, datetime]],
    ) -> IngestResult:
        """The sighting, keyed by the event (if a concurrent delivery, or an earlier copy in this
        batch, won: its result), with the customer, visit, views and demographics it changes."""
        if decision.outcome is Outcome.STAFF:  # the member is named on the sighting
            sighting_id = await unit.add_sighting(key, track, decision)
            if sighting_id is None:
                return await _replay(unit, key, track)
            return IngestResult(sighting_id, Outcome.STAFF, None, decision.person_id,
                                decision.similarity, False, None, False)  # fmt: skip
        result = await self._apply(
            unit, key, track, decision, timedelta(seconds=site.visit_window_s),
            new_views, dropped, dirty,
        )  # fmt: skip
        if result is None:
            return await _replay(unit, key, track)
        if track.demographics is not None and site.demographics_enabled:
            await _record_demographics(unit, track.demographics, result.sighting_id, result)
        return result

    async def _search(self, tracks: list[Track]) -> _Searched:
        """Per track, per shot: the nearest views. One multi-vector search for every shot of the
        batch (staff recognised on the edge need none); whose each view is, the unit's survey
        reads."""
        wanted = [n for n, t in enumerate(tracks) if not t.staff_by_edge]
        out = _Searched([[] for _ in tracks], set())
        if not wanted:
            return out
        vectors = np.stack([s.embedding for n in wanted for s in tracks[n].shots])
        hits = await self._gallery.nearest_views(
            tracks[wanted[0]].tenant_id, vectors, self._settings.top_k
        )
        start = 0
        for n in wanted:
            count = len(tracks[n].shots)
            out.shots[n] = hits[start : start + count]
            start += count
        out.views.update(h.view_id for per in hits for h in per)
        return out

    async def _thresholds(self, tenant_id: UUID, unit: IngestUnit) -> Thresholds:
        """The open-set thresholds for the tenant's gallery sizes. Counted in this unit of work
        the first time; after that recounted as ``GALLERY_SIZE_SHARE`` says (a busy new store's
        gallery grows fast), in the background: counting a large gallery's views takes longer
        than an event should wait, and the thresholds move with the logarithm of its size."""
        cached = self._gallery_sizes.get(tenant_id)
        if cached is None:
            customers, staff = await unit.gallery_sizes()
            return self._remember_sizes(tenant_id, customers, staff)
        expires, events, lasts, thresholds = cached
        self._gallery_sizes[tenant_id] = (expires, events + 1, lasts, thresholds)
        stale = expires <= time.monotonic() or events + 1 >= lasts
        if stale and tenant_id not in self._recounts:
            task = asyncio.create_task(self._recount(tenant_id))
            self._recounts[tenant_id] = task
            task.add_done_callback(lambda _: self._recounts.pop(tenant_id, None))
        return thresholds

    def _remember_sizes(self, tenant_id: UUID, customers: int, staff: int) -> Thresholds:
        thresholds = Thresholds.for_gallery(customers, staff, self._settings)
        lasts = max(GALLERY_SIZE_EVERY, (customers + staff) // GALLERY_SIZE_SHARE)
        expires = time.monotonic() + GALLERY_SIZE_TTL_S
        self._gallery_sizes[tenant_id] = (expires, 0, lasts, thresholds)
        return thresholds

    async def _recount(self, tenant_id: UUID) -> None:
        try:
            async with self._store.unit(DbScope(tenant_id)) as unit:
                customers, staff = await unit.gallery_sizes()
        except VisitlensError as error:  # the thresholds in use stay; the next event tries again
            logger.warning("could not recount the gallery of tenant %s: %s", tenant_id, error)
            return
        self._remember_sizes(tenant_id, customers, staff)

    async def _apply(
        self,
        unit: IngestUnit,
        key: EventKey,
        track: Track,
        decision: Decision,
        window: timedelta,
        new_views: list[GalleryRow],
        dropped: list[UUID],
        dirty: list[tuple[UUID, datetime]],
    ) -> IngestResult | None:
        """A customer's pass, new or returning: decided in full first (a returning customer is
        locked and read for it), then written in one go. None if the event's sighting exists
        already (a copy won): nothing was written."""
        stored: list[View] = []  # a customer created by this event has no views yet
        latest: OpenVisit | None = None
        if decision.outcome is Outcome.NEW:
            customer_id = uuid.uuid4()
        else:
            assert decision.person_id is not None
            customer_id = decision.person_id
            locked = await unit.lock_customer(customer_id, track.site_id)
            if locked is None:
                raise Busy("the matched customer was erased meanwhile; deciding again")
            latest, stored = locked.latest_visit, locked.views

        change = visit_change(latest, track.first_seen, track.last_seen, window)
        opened = change.action is VisitAction.OPEN
        visit_id = uuid.uuid4() if change.visit_id is None else change.visit_id
        update = choose_views(stored, [(s.embedding, s.quality) for s in track.shots],
                              self._settings)  # fmt: skip
        views = [(uuid.uuid4(), track.shots[index]) for index in update.add]
        is_new = decision.outcome is Outcome.NEW
        written = await unit.record_pass(
            key, track, decision,
            CustomerPass(customer_id, is_new, change, visit_id, views, update.remove),
        )  # fmt: skip
        if written is None:
            return None
        sighting_id, visits = written
        # The statistics of the visit's hour (and the hour it moved from) are now stale: marked in
        # this transaction, so no committed visit can be missed by the reports.
        moved_from = latest.started_at if latest and not opened else None
        dirty.extend((track.site_id, t) for t in (change.started_at, moved_from) if t is not None)
        new_views.extend(
            GalleryRow(view_id, track.tenant_id, customer_id, PersonKind.CUSTOMER, shot.embedding)
            for view_id, shot in views
        )
        dropped.extend(update.remove)
        return IngestResult(
            sighting_id, decision.outcome, customer_id, None, decision.similarity, is_new,
            VisitOutcome(visit_id, change.started_at, change.ended_at, opened, visits), False,
        )  # fmt: skip


async def _replay(unit: IngestUnit, key: EventKey, track: Track) -> IngestResult:
    """The stored result of an event whose sighting a concurrent copy (or an earlier copy in
    this batch) wrote first."""
    stored = (await unit.survey(track.tenant_id, [key])).stored
    replay = _replayed(stored.get((key.source, key.event_id)), key)
    assert replay is not None
    return replay


async def _record_demographics(
    unit: IngestUnit, estimate: DemographicsEstimate, sighting_id: UUID, result: IngestResult
) -> None:
    """The edge's label and band on the sighting; the customer's evidence grows by it and their
    label and band are derived anew (staff sightings keep nothing)."""
    if result.customer_id is None:
        return
    score, votes = await unit.add_demographics(
        sighting_id, result.customer_id, estimate,
        signed_evidence(estimate.gender, estimate.gender_confidence),
    )  # fmt: skip
    gender, band = person_demographics(score, votes)
    await unit.set_customer_demographics(result.customer_id, gender, band)


def _replayed(stored: StoredSighting | None, key: EventKey) -> IngestResult | None:
    """The stored answer to a replay, or None for an event not seen before; the same id with
    other data is a conflict."""
    if stored is None:
        return None
    if key.digest is not None and stored.digest is not None and stored.digest != key.digest:
        raise Conflict(
            f"event id {key.event_id!r} from this source was already counted with other data; "
            "a new pass needs a new id",
            field="id",
        )
    outcome = Outcome(stored.decision)
    return IngestResult(
        stored.sighting_id, outcome, stored.customer_id, stored.staff_id, stored.similarity,
        outcome is Outcome.NEW, stored.visit, True,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Work:
    """One tenant's checked events of a batch or a group, and where their outcomes go."""

    tenant_id: UUID
    items: Sequence[Submission]
    senders: Sequence[Principal]
    """Who sent each of ``items`` (verified; whether still active is read in the unit)."""
    indices: list[int]
    """Which of ``items`` are this tenant's and passed their checks."""
    outcomes: list[IngestResult | VisitlensError | None]
    now: datetime


class _Refusal(Exception):
    """An event refused while it wrote outside a savepoint (alone in its unit, or in an
    optimistic one): the unit is rolled back and the refusal is the event's answer."""

    def __init__(self, index: int, error: VisitlensError) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


@dataclass(slots=True)
class _Searched:
    shots: list[list[list[Nearest]]]
    """Per track, per shot: the gallery's nearest views."""
    views: set[UUID]


def _candidates(
    shots: list[list[Nearest]], owners: dict[UUID, tuple[UUID, PersonKind]]
) -> list[list[Candidate]]:
    """The hits of a track's shots whose views are still kept, as their people's candidates."""
    return [[Candidate(*owners[h.view_id], h.similarity) for h in per if h.view_id in owners]
            for per in shots]  # fmt: skip


def _sighting_of(outcome: IngestResult | VisitlensError | None) -> UUID | None:
    return outcome.sighting_id if isinstance(outcome, IngestResult) else None


@dataclass(slots=True)
class _BatchMemory:
    """What the earlier events of a batch did, for the later ones: the gallery search ran before
    any of them was written, so the views they added are compared here (a person passing twice
    within one batch is one person), and who they were, where and when (one person is not two
    tracks at one camera at once)."""

    views: list[tuple[UUID, Floats]] = field(default_factory=list)
    seen: list[tuple[UUID, str, datetime, datetime, UUID]] = field(default_factory=list)

    def extend(
        self, shots: list[list[Candidate]], track: Track, top_k: int
    ) -> list[list[Candidate]]:
        if not self.views:
            return shots
        matrix = np.stack([embedding for _, embedding in self.views])
        merged = []
        for candidates, shot in zip(shots, track.shots, strict=True):
            similarities = np.clip(matrix @ shot.embedding, -1.0, 1.0)
            extra = [
                Candidate(person, PersonKind.CUSTOMER, float(similarity))
                for (person, _), similarity in zip(self.views, similarities, strict=True)
            ]
            ranked = sorted([*candidates, *extra], key=lambda c: c.similarity, reverse=True)
            merged.append(ranked[:top_k])
        return merged

    def busy(self, track: Track) -> frozenset[UUID]:
        return frozenset(
            person
            for camera, track_id, first, last, person in self.seen
            if camera == track.camera_id and track_id != track.track_id
            and first <= track.last_seen and last >= track.first_seen
        )  # fmt: skip

    def remember(self, track: Track, result: IngestResult, added: Sequence[GalleryRow]) -> None:
        person = result.customer_id or result.staff_id
        if person is not None:
            self.seen.append(
                (track.camera_id, track.track_id, track.first_seen, track.last_seen, person)
            )
        self.views.extend((row.person_id, row.embedding) for row in added)


async def _quietly_delete(gallery: Gallery, tenant_id: UUID, view_ids: list[UUID]) -> None:
    try:
        await gallery.delete_views(tenant_id, view_ids)
    except VisitlensError:
        logger.warning("could not delete %d gallery views of tenant %s", len(view_ids), tenant_id)
