"""The ingest use-case's decisions against in-memory fakes of its ports (no stack, milliseconds):
new vs returning, visit windows, replays and conflicts, refusals that change nothing, staff, the
"one person is not two tracks at once" rule, batches, and a gallery outage mid-write."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import numpy as np
import pytest

from tests.fakes import FakeClock, FakeGallery, FakeIngestStore
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.config import IdentitySettings
from visitlens.contracts import DemographicsEstimate
from visitlens.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    TransientError,
    Unauthenticated,
    VisitlensError,
)
from visitlens.identity.decisions import Outcome
from visitlens.identity.ingest import (
    CameraSite,
    EventKey,
    IngestResult,
    IngestService,
    Shot,
    Submission,
    Track,
)
from visitlens.ports import GalleryRow, PersonKind

RNG = np.random.default_rng(7)
TENANT, SITE, CAMERA, OTHER_CAMERA = uuid4(), uuid4(), uuid4(), uuid4()
WINDOW_S = 1800


def face() -> np.ndarray:
    v = RNG.standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def seen_again(v: np.ndarray, noise: float = 0.05) -> np.ndarray:
    w = v + noise * RNG.standard_normal(128).astype(np.float32) / np.sqrt(128)
    out: np.ndarray = (w / np.linalg.norm(w)).astype(np.float32)
    return out


class World:
    def __init__(self, *, demographics: bool = False) -> None:
        self.clock = FakeClock()
        self.store = FakeIngestStore()
        self.gallery = FakeGallery()
        self.store.state.cameras[CAMERA] = CameraSite(SITE, WINDOW_S, 30, demographics)
        self.store.state.cameras[OTHER_CAMERA] = CameraSite(SITE, WINDOW_S, 30, demographics)
        self.service = IngestService(self.store, self.gallery, IdentitySettings(), self.clock)
        self.worker = Principal(uuid4(), PrincipalKind.API_KEY, Role.WORKER, TENANT,
                                frozenset({SITE}), frozenset({CAMERA, OTHER_CAMERA}))  # fmt: skip

    def track(
        self, embedding: np.ndarray, *, ago_s: float = 0, lasting_s: float = 4,
        camera: UUID = CAMERA, demographics: DemographicsEstimate | None = None,
    ) -> tuple[EventKey, Track]:  # fmt: skip
        end = self.clock.now() - timedelta(seconds=ago_s)
        track_id = f"t-{uuid4().hex[:8]}"
        track = Track(
            TENANT, SITE, camera, track_id, end - timedelta(seconds=lasting_s), end,
            self.gallery.model_id, self.gallery.dim, (Shot(embedding, 0.9),), None,
            demographics=demographics,
        )  # fmt: skip
        source = f"/tenants/{TENANT}/sites/{SITE}/cameras/{camera}"
        return EventKey(source, uuid4().hex, "com.visitlens.face.detected.v2", b"d" * 32), track

    async def ingest(self, key: EventKey, track: Track) -> IngestResult:
        return await self.service.ingest(self.worker, key, track)

    def snapshot(self) -> tuple[object, set[UUID]]:
        return copy.deepcopy(self.store.state), set(self.gallery.rows)


async def test_a_first_pass_is_a_new_customer_with_a_visit_and_a_gallery_view() -> None:
    w = World()
    result = await w.ingest(*w.track(face()))
    assert result.outcome is Outcome.NEW and result.is_new_customer and not result.replayed
    assert result.visit is not None and result.visit.opened and result.visit.visit_count == 1
    assert set(w.store.state.customers) == {result.customer_id}
    assert w.gallery.people(TENANT) == {result.customer_id}
    assert {site for site, _ in w.store.state.dirty} == {SITE}  # the report hour is marked stale


async def test_the_same_face_within_the_window_extends_the_visit() -> None:
    w = World()
    me = face()
    first = await w.ingest(*w.track(me))
    w.clock.advance(minutes=5)
    again = await w.ingest(*w.track(seen_again(me)))
    assert again.outcome is Outcome.RETURNING and again.customer_id == first.customer_id
    assert again.visit is not None and first.visit is not None
    assert again.visit.visit_id == first.visit.visit_id and not again.visit.opened
    assert again.visit.visit_count == 1 and len(w.store.state.visits) == 1


async def test_the_same_face_after_the_window_is_a_second_visit() -> None:
    w = World()
    me = face()
    first = await w.ingest(*w.track(me))
    w.clock.advance(seconds=WINDOW_S + 600)
    later = await w.ingest(*w.track(seen_again(me)))
    assert later.outcome is Outcome.RETURNING and later.customer_id == first.customer_id
    assert later.visit is not None and later.visit.opened and later.visit.visit_count == 2
    assert not later.is_new_customer


async def test_two_people_are_two_customers() -> None:
    w = World()
    a = await w.ingest(*w.track(face()))
    b = await w.ingest(*w.track(face(), camera=OTHER_CAMERA))
    assert a.customer_id != b.customer_id and b.outcome is Outcome.NEW


async def test_a_replay_answers_the_stored_result_and_changes_nothing() -> None:
    w = World()
    key, track = w.track(face())
    first = await w.ingest(key, track)
    before = w.snapshot()
    replay = await w.ingest(key, track)
    assert replay.replayed and replay.sighting_id == first.sighting_id
    assert replay.customer_id == first.customer_id and replay.visit == first.visit
    assert w.snapshot() == before


async def test_the_same_event_id_with_other_data_is_a_conflict() -> None:
    w = World()
    key, track = w.track(face())
    await w.ingest(key, track)
    before = w.snapshot()
    forged = EventKey(key.source, key.event_id, key.event_type, b"x" * 32)
    with pytest.raises(Conflict) as refused:
        await w.ingest(forged, track)
    assert refused.value.field == "id" and w.snapshot() == before


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ("source", "source"),
        ("future", "data.last_seen"),
        ("too_long", "data.last_seen"),
        ("old", "data.first_seen"),
        ("model", "data.model_id"),
        ("camera", "data.camera_id"),
    ],
)
async def test_a_refused_event_names_its_field_and_changes_nothing(change: str, field: str) -> None:
    w = World()
    await w.ingest(*w.track(face()))
    before = w.snapshot()
    key, track = w.track(face())
    if change == "source":
        key = EventKey("/tenants/x/sites/y/cameras/z", key.event_id, key.event_type, key.digest)
    elif change == "future":
        track = w.track(face(), ago_s=-3600)[1]
    elif change == "too_long":
        track = w.track(face(), lasting_s=24 * 3600)[1]
    elif change == "old":
        track = w.track(face(), ago_s=40 * 86_400)[1]
    elif change == "model":
        track = Track(**{**{s: getattr(track, s) for s in Track.__slots__}, "model_id": "other"})
    elif change == "camera":
        w.store.state.cameras.pop(CAMERA)
    with pytest.raises(InvalidInput) as refused:
        await w.ingest(key, track)
    assert refused.value.field == field
    if change != "camera":
        assert w.snapshot() == before


async def test_a_worker_writes_only_its_own_cameras() -> None:
    w = World()
    key, track = w.track(face())
    intruder = Principal(uuid4(), PrincipalKind.API_KEY, Role.WORKER, TENANT,
                         frozenset({SITE}), frozenset({OTHER_CAMERA}))  # fmt: skip
    with pytest.raises(Forbidden):
        await w.service.ingest(intruder, key, track)
    other_tenant = Principal(uuid4(), PrincipalKind.API_KEY, Role.WORKER, uuid4(),
                             frozenset({SITE}), frozenset({CAMERA}))  # fmt: skip
    with pytest.raises(Forbidden):
        await w.service.ingest(other_tenant, key, track)
    assert w.store.commits == 0 and not w.gallery.rows


async def test_active_staff_are_recognised_and_never_counted() -> None:
    w = World()
    staff_id, me = uuid4(), face()
    w.store.state.staff[staff_id] = True
    view_id = uuid4()
    w.store.state.views[view_id] = {"customer_id": None, "staff_id": staff_id,
                                    "kind": PersonKind.STAFF, "quality": 0.9,
                                    "embedding": me.tobytes()}  # fmt: skip
    await w.gallery.insert([GalleryRow(view_id, TENANT, staff_id, PersonKind.STAFF, me)])
    key, track = w.track(seen_again(me))
    result = await w.ingest(key, track)
    assert result.outcome is Outcome.STAFF and result.staff_id == staff_id
    assert result.visit is None and not w.store.state.customers and not w.store.state.visits
    replay = await w.ingest(key, track)  # the member is on the stored sighting
    assert replay.replayed and replay.staff_id == staff_id


async def test_vectors_of_someone_no_longer_there_do_not_match() -> None:
    """Gallery vectors can outlive their person (an erasure, a deactivated staff member)."""
    w = World()
    gone, me = uuid4(), face()
    await w.gallery.insert([GalleryRow(uuid4(), TENANT, gone, PersonKind.CUSTOMER, me)])
    result = await w.ingest(*w.track(seen_again(me)))
    assert result.outcome is Outcome.NEW and result.customer_id != gone


async def test_a_hit_counts_for_whose_view_it_is_now_not_whose_the_gallery_says() -> None:
    """The gallery's copy of a view can be stale: the view was merged into another person (the
    gallery rows are re-pointed later) or replaced by a better one (deleted a moment later).
    The database's answer, read in the unit, decides."""
    w = World()
    me = face()
    first = await w.ingest(*w.track(me, ago_s=3600))
    assert first.outcome is Outcome.NEW and first.customer_id is not None
    kept = uuid4()  # merged into `kept`: the database moved the views, the gallery not yet
    w.store.state.customers[kept] = dict(w.store.state.customers.pop(first.customer_id))
    for view in w.store.state.views.values():
        view["customer_id"] = kept
    again = await w.ingest(*w.track(seen_again(me), ago_s=60))
    assert again.outcome is Outcome.RETURNING and again.customer_id == kept

    w.store.state.views.clear()  # replaced (or erased) in the database, still in the gallery
    third = await w.ingest(*w.track(seen_again(me), ago_s=30))
    assert third.outcome is Outcome.NEW and third.customer_id not in (kept, first.customer_id)


async def test_one_person_is_not_two_tracks_at_one_camera_at_once() -> None:
    """Twins (or a look-alike) passing together: the second track cannot be the first person."""
    w = World()
    me = face()
    first = await w.ingest(*w.track(me, lasting_s=20))
    twin = await w.ingest(*w.track(seen_again(me), lasting_s=10))
    assert twin.outcome is Outcome.NEW and twin.customer_id != first.customer_id


async def test_a_batch_counts_a_person_passing_twice_once() -> None:
    w = World()
    me = face()
    early = w.track(me, ago_s=120)
    late = w.track(seen_again(me), ago_s=30, camera=OTHER_CAMERA)
    results = await w.service.ingest_many(w.worker, [Submission(*early), Submission(*late)])
    assert all(isinstance(r, IngestResult) for r in results)
    first, second = results
    assert isinstance(first, IngestResult) and isinstance(second, IngestResult)
    assert first.outcome is Outcome.NEW and second.outcome is Outcome.RETURNING
    assert second.customer_id == first.customer_id and len(w.store.state.customers) == 1
    assert w.gallery.searches == 1  # one multi-vector search for the whole batch
    assert w.store.commits == 1  # one unit of work for the whole batch


async def test_a_bad_event_in_a_batch_is_refused_alone() -> None:
    w = World()
    good, bad = w.track(face()), w.track(face(), ago_s=-3600)
    also_good = w.track(face(), camera=OTHER_CAMERA)
    results = await w.service.ingest_many(
        w.worker, [Submission(*good), Submission(*bad), Submission(*also_good)]
    )
    assert isinstance(results[1], VisitlensError) and results[1].field == "data.last_seen"
    assert isinstance(results[0], IngestResult) and isinstance(results[2], IngestResult)
    assert len(w.store.state.customers) == 2


async def test_a_gallery_outage_counts_nothing_and_the_retry_counts_once() -> None:
    w = World()
    key, track = w.track(face())
    before = w.snapshot()
    w.gallery.fail_next_insert = True
    with pytest.raises(TransientError):
        await w.ingest(key, track)
    assert w.snapshot() == before  # the write unit rolled back; no vector was left behind
    result = await w.ingest(key, track)  # the sender's retry
    assert result.outcome is Outcome.NEW and not result.replayed
    assert len(w.store.state.customers) == 1 and len(w.store.state.sightings) == 1


async def test_demographics_accumulate_on_the_customer_when_the_tenant_allows() -> None:
    w = World(demographics=True)
    me = face()
    estimate = DemographicsEstimate(gender="female", gender_confidence=0.9, age_band="25-34")
    first = await w.ingest(*w.track(me, demographics=estimate))
    assert first.customer_id is not None
    customer = w.store.state.customers[first.customer_id]
    assert customer["gender"] == "female" and customer["age_band"] == "25-34"

    off = World(demographics=False)
    quiet = await off.ingest(*off.track(face(), demographics=estimate))
    assert quiet.customer_id is not None
    assert off.store.state.customers[quiet.customer_id]["gender"] is None


# --- single events arriving together: group commit -------------------------------------------


async def test_concurrent_single_events_share_a_unit_of_work_and_each_gets_its_own_answer() -> None:
    """Events of one tenant arriving while it is busy are worked as one group: one search, one
    unit of work, and the answers a batch of them would get, each to its own sender."""
    w = World()
    me = face()
    early = w.track(me, ago_s=120)
    late = w.track(seen_again(me), ago_s=30, camera=OTHER_CAMERA)
    stranger = w.track(face())
    future = w.track(face(), ago_s=-3600)  # refused at its check, before any group
    results = await asyncio.gather(
        *(w.ingest(*t) for t in (early, late, stranger, future)), return_exceptions=True
    )
    first, second, third, refused = results
    assert isinstance(first, IngestResult) and isinstance(second, IngestResult)
    assert isinstance(third, IngestResult)
    assert first.outcome is Outcome.NEW and second.outcome is Outcome.RETURNING
    assert second.customer_id == first.customer_id != third.customer_id
    assert isinstance(refused, InvalidInput) and refused.field == "data.last_seen"
    assert w.service.groups == 1 and w.store.commits == 1 and w.gallery.searches == 1
    assert len(w.store.state.customers) == 2 and len(w.store.state.sightings) == 3
    # optimistic: one read of everything, no savepoint per event
    assert [(u.surveys, u.savepoints) for u in w.store.units] == [(1, 0)]


async def test_a_refusal_while_writing_undoes_the_optimistic_unit_and_the_rest_count_once() -> None:
    """Two copies of one event id with different data in one group: the second is refused only
    when it writes. The unit (no savepoints) is undone, the copy gets its refusal, and the others
    run again in a second unit, each in a savepoint: counted once, and never a third unit."""
    w = World()
    key, track = w.track(face())
    forged = EventKey(key.source, key.event_id, key.event_type, b"x" * 32)
    others = [w.track(face()) for _ in range(3)]
    results = await asyncio.gather(
        w.ingest(key, track), *(w.ingest(*t) for t in others), w.ingest(forged, track),
        return_exceptions=True,
    )  # fmt: skip
    assert isinstance(results[-1], Conflict) and results[-1].field == "id"
    assert all(isinstance(r, IngestResult) and r.outcome is Outcome.NEW for r in results[:-1])
    assert len(w.store.state.customers) == 4 and len(w.store.state.sightings) == 4
    assert len(w.gallery.rows) == 4  # the undone unit's views were never inserted, or taken back
    # the first unit read once more (the copy's stored answer), then was undone
    assert [(u.surveys, u.savepoints) for u in w.store.units] == [(2, 0), (1, 4)]
    assert w.store.commits == 1


async def test_a_refusal_inside_a_group_is_its_own_and_the_others_count() -> None:
    w = World()
    key, track = w.track(face())
    await w.ingest(key, track)
    forged = EventKey(key.source, key.event_id, key.event_type, b"x" * 32)
    others = [w.track(face()) for _ in range(3)]
    results = await asyncio.gather(
        w.ingest(forged, track), *(w.ingest(*t) for t in others), return_exceptions=True
    )
    assert isinstance(results[0], Conflict) and results[0].field == "id"
    assert all(isinstance(r, IngestResult) and r.outcome is Outcome.NEW for r in results[1:])
    assert len(w.store.state.customers) == 4


async def test_a_lone_refusal_beside_replays_refuses_only_itself() -> None:
    """A group whose only new event is refused: the unit is undone, the replays still get their
    stored answers (nothing else was in the unit)."""
    w = World()
    first = w.track(face())
    stored = await w.ingest(*first)
    w.store.state.cameras.pop(OTHER_CAMERA)  # the camera was removed meanwhile
    stray = w.track(face(), camera=OTHER_CAMERA)
    before = w.snapshot()
    replay, refused = await asyncio.gather(
        w.ingest(*first), w.ingest(*stray), return_exceptions=True
    )
    assert isinstance(replay, IngestResult) and replay.replayed
    assert replay.sighting_id == stored.sighting_id
    assert isinstance(refused, InvalidInput) and refused.field == "data.camera_id"
    assert w.snapshot() == before


def poisoned(w: World) -> tuple[EventKey, Track]:
    """A pass at the very start of the calendar (+14:00), as no border check lets through any
    more: the unit's own arithmetic on it (the busy-people range) overflows."""
    key, track = w.track(face())
    start = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    return key, replace(track, first_seen=start, last_seen=start + timedelta(seconds=5))


async def test_an_event_that_breaks_its_group_fails_alone_and_the_group_counts() -> None:
    """1 poisoned + 32 valid concurrent events of one tenant: the valid ones share units, the
    poisoned one breaks its unit, and the group is worked again event by event — 32 counted,
    the poisoned one alone refused, nothing of it stored."""
    w = World()
    w.service.check = lambda *args, **kwargs: None  # type: ignore[method-assign]  # past the border
    valid = [w.track(face()) for _ in range(32)]
    bad = poisoned(w)
    events = [*valid[:16], bad, *valid[16:]]
    results = await asyncio.gather(*(w.ingest(*e) for e in events), return_exceptions=True)
    failed = results.pop(16)
    assert isinstance(failed, VisitlensError) and failed.status == 500
    assert all(isinstance(r, IngestResult) and r.outcome is Outcome.NEW for r in results)
    assert len(w.store.state.sightings) == 32 and len(w.gallery.rows) == 32
    assert bad[0].event_id not in {k[2] for k in w.store.state.sightings}


async def test_an_event_that_breaks_its_batch_fails_alone_and_the_batch_counts() -> None:
    w = World()
    w.service.check = lambda *args, **kwargs: None  # type: ignore[method-assign]
    items = [Submission(*w.track(face())) for _ in range(8)]
    items.insert(3, Submission(*poisoned(w)))
    outcomes = await w.service.ingest_many(w.worker, items)
    assert isinstance(outcomes[3], VisitlensError) and outcomes[3].status == 500
    rest = outcomes[:3] + outcomes[4:]
    assert all(isinstance(r, IngestResult) and r.outcome is Outcome.NEW for r in rest)
    assert len(w.store.state.sightings) == 8


async def test_a_dependency_down_fails_the_group_once_not_event_by_event() -> None:
    """A transient failure fails every event alike: raised for the whole group at once, not
    retried event by event (each would meet it again)."""
    w = World()
    tracks = [w.track(face()) for _ in range(4)]
    w.gallery.fail_next_insert = True
    results = await asyncio.gather(*(w.ingest(*t) for t in tracks), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)
    assert len(w.store.units) == w.service.groups  # one unit per group, none per event


async def test_a_gallery_outage_fails_the_whole_group_and_its_retry_counts_once() -> None:
    w = World()
    tracks = [w.track(face()) for _ in range(3)]
    before = w.snapshot()
    w.gallery.fail_next_insert = True
    results = await asyncio.gather(*(w.ingest(*t) for t in tracks), return_exceptions=True)
    assert all(isinstance(r, TransientError) for r in results)
    assert w.snapshot() == before
    again = await asyncio.gather(*(w.ingest(*t) for t in tracks))
    assert all(r.outcome is Outcome.NEW and not r.replayed for r in again)
    assert len(w.store.state.sightings) == 3


async def test_views_a_customer_no_longer_keeps_are_discarded_off_the_answer_path() -> None:
    settings = IdentitySettings(max_views_per_person=1)
    w = World()
    w.service = IngestService(w.store, w.gallery, settings, w.clock)
    me = face()
    await w.ingest(*w.track(me))
    (old,) = w.gallery.rows
    w.clock.advance(minutes=1)
    # a good view of the same person replaces the poor one kept so far
    key, track = w.track(seen_again(me, 0.01))
    better = Track(**{**{s: getattr(track, s) for s in Track.__slots__},
                      "shots": (Shot(track.shots[0].embedding, 1.0),)})  # fmt: skip
    w.store.state.views[old]["quality"] = 0.2  # a poor fallback view
    result = await w.ingest(key, better)
    assert result.outcome is Outcome.RETURNING
    assert w.gallery.discarded == [old] and old not in w.gallery.rows


async def test_the_gallery_is_recounted_in_the_background_not_on_an_events_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counting a large gallery takes longer than an event should wait: counted once inline for
    a tenant's first event, then every GALLERY_SIZE_EVERY events by a background unit of work."""
    from tests.fakes import FakeIngestUnit
    from visitlens.identity import ingest as module

    counted: list[int] = []
    original = FakeIngestUnit.gallery_sizes

    async def counting(self: FakeIngestUnit) -> tuple[int, int]:
        counted.append(len(self.state.views))
        return await original(self)

    monkeypatch.setattr(FakeIngestUnit, "gallery_sizes", counting)
    w = World()
    await w.ingest(*w.track(face()))
    assert counted == [0] and w.store.commits == 1
    for _ in range(module.GALLERY_SIZE_EVERY):
        await w.ingest(*w.track(face()))
    await asyncio.sleep(0)  # the background recount's turn
    await asyncio.sleep(0)
    assert len(counted) == 2 and counted[1] >= module.GALLERY_SIZE_EVERY
    # the recount was a unit of work of its own, beside one per event
    assert w.store.commits == module.GALLERY_SIZE_EVERY + 2


async def test_a_large_gallery_is_recounted_once_per_hundredth_it_could_have_grown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fakes import FakeIngestUnit
    from visitlens.identity import ingest as module

    counted: list[int] = []

    async def large(self: FakeIngestUnit) -> tuple[int, int]:
        counted.append(1)
        return 200 * module.GALLERY_SIZE_SHARE * module.GALLERY_SIZE_EVERY // 100, 0

    monkeypatch.setattr(FakeIngestUnit, "gallery_sizes", large)
    w = World()
    await w.ingest(*w.track(face()))
    for _ in range(module.GALLERY_SIZE_EVERY + 1):
        await w.ingest(*w.track(face()))
    await asyncio.sleep(0)
    assert len(counted) == 1  # a small gallery would have been recounted by now
    for _ in range(module.GALLERY_SIZE_EVERY):
        await w.ingest(*w.track(face()))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(counted) == 2  # twice GALLERY_SIZE_EVERY events: a hundredth of this gallery


async def test_a_sender_no_longer_active_is_refused_where_its_events_are_recorded() -> None:
    """Revoked, disabled or of a deactivated tenant: read in the unit of work that records the
    event (a token stays valid until it expires), for a new event and a replay alike; the other
    senders' events in the same group count."""
    w = World()
    first = w.track(face())
    await w.ingest(*first)
    revoked = Principal(uuid4(), PrincipalKind.API_KEY, Role.WORKER, TENANT,
                        frozenset({SITE}), frozenset({CAMERA, OTHER_CAMERA}))  # fmt: skip
    w.store.state.inactive.add(revoked.subject)
    customers = len(w.store.state.customers)
    other = w.track(face())
    results = await asyncio.gather(
        w.service.ingest(revoked, *w.track(face())),
        w.service.ingest(revoked, *first),  # a replay gets no stored answer either
        w.ingest(*other),
        return_exceptions=True,
    )
    assert isinstance(results[0], Unauthenticated) and isinstance(results[1], Unauthenticated)
    assert isinstance(results[2], IngestResult) and results[2].outcome is Outcome.NEW
    assert len(w.store.state.customers) == customers + 1
    alone = await asyncio.gather(w.service.ingest(revoked, *w.track(face())),
                                 return_exceptions=True)  # fmt: skip
    assert isinstance(alone[0], Unauthenticated)
    many = await w.service.ingest_many(revoked, [Submission(*w.track(face()))])
    assert isinstance(many[0], Unauthenticated)


async def test_a_pass_in_the_review_band_starts_a_customer_and_suggests_the_closest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a large gallery the link threshold is high; a pass scoring between the base threshold
    and it is a new customer, kept with its closest customer as a duplicates suggestion."""
    from tests.fakes import FakeIngestUnit

    async def large(self: FakeIngestUnit) -> tuple[int, int]:
        return 100_000, 0

    monkeypatch.setattr(FakeIngestUnit, "gallery_sizes", large)
    w = World()
    me = face()
    first = await w.ingest(*w.track(me))
    noise = face()
    noise -= noise.dot(me) * me
    cos = IdentitySettings().customer_link_threshold + 0.03
    lookalike = (cos * me + np.sqrt(1 - cos**2) * noise / np.linalg.norm(noise)).astype(np.float32)
    w.clock.advance(minutes=40)
    second = await w.ingest(*w.track(lookalike, camera=OTHER_CAMERA))
    assert second.outcome is Outcome.NEW and second.customer_id != first.customer_id
    assert second.customer_id is not None and first.customer_id is not None
    assert w.store.state.suggestions == {
        (second.customer_id, first.customer_id): pytest.approx(cos, abs=1e-4)
    }
    w.clock.advance(minutes=40)
    await w.ingest(*w.track(face()))  # a stranger: no suggestion
    assert len(w.store.state.suggestions) == 1
