"""Merge, unmerge, "not the same person" and erasure against in-memory fakes of their ports (no
stack): what moves, what is restored exactly, what is refused without a change, and that a gallery
or object-store failure commits nothing."""

from __future__ import annotations

import copy
from datetime import timedelta
from uuid import UUID, uuid4

import numpy as np
import pytest

from tests.fakes import FakeClock, FakeGallery, FakeObjectStore, FakePersonsStore
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.errors import Conflict, Forbidden, InvalidInput, NotFound, TransientError
from visitlens.persons.erasure import Eraser
from visitlens.persons.merging import PersonMerger, pair
from visitlens.ports import GalleryRow, PersonKind

RAW = "faces-raw"
TENANT, SITE = uuid4(), uuid4()
ADMIN = Principal(uuid4(), PrincipalKind.USER, Role.TENANT_ADMIN, TENANT)
RNG = np.random.default_rng(11)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakePersonsStore(TENANT)
        self.gallery = FakeGallery()
        self.objects = FakeObjectStore()
        self.merger = PersonMerger(self.store, self.gallery)
        self.eraser = Eraser(self.store, self.gallery, self.objects, RAW)

    async def person(self, *, days_ago: int, visits: int = 1, views: int = 1) -> UUID:
        start = self.clock.now() - timedelta(days=days_ago)
        customer = self.store.add_customer(start, SITE)
        for n in range(visits):
            self.store.add_visit(customer, SITE, start + timedelta(days=n))
        for _ in range(views):
            v = RNG.standard_normal(128).astype(np.float32)
            view = self.store.add_view(customer, v / np.linalg.norm(v))
            await self.gallery.insert(
                [GalleryRow(view, TENANT, customer, PersonKind.CUSTOMER, v / np.linalg.norm(v))]
            )
        return customer

    def owners(self) -> dict[UUID, set[UUID]]:
        """Which person the gallery's vectors belong to."""
        out: dict[UUID, set[UUID]] = {}
        for row in self.gallery.rows.values():
            out.setdefault(row.person_id, set()).add(row.view_id)
        return out


async def test_a_merge_moves_everything_and_only_the_earliest_visit_is_new() -> None:
    w = World()
    kept = await w.person(days_ago=3, visits=2, views=2)
    merged = await w.person(days_ago=10, visits=1, views=1)
    result = await w.merger.merge(ADMIN, TENANT, kept, merged)
    s = w.store.state
    assert merged not in s.customers
    assert result["moved"] == {"visits": 1, "sightings": 1, "embeddings": 1}
    mine = sorted((v["started_at"], v["is_new"]) for v in s.visits.values())
    assert all(v["customer_id"] == kept for v in s.visits.values()) and len(mine) == 3
    assert [is_new for _, is_new in mine] == [True, False, False]  # the merged one came first
    assert s.customers[kept].visit_count == 3
    assert s.customers[kept].first_seen_at == w.clock.now() - timedelta(days=10)
    assert set(w.owners()) == {kept} and len(w.owners()[kept]) == 3
    assert [a for a, _, _ in s.audit] == ["person.merge"] and s.refreshed


async def test_an_unmerge_puts_back_exactly_what_the_merge_moved() -> None:
    w = World()
    kept = await w.person(days_ago=3, visits=2, views=2)
    merged = await w.person(days_ago=10, visits=1, views=1)
    before, gallery_before = copy.deepcopy(w.store.state), w.owners()
    done = await w.merger.merge(ADMIN, TENANT, kept, merged)
    undone = await w.merger.unmerge(ADMIN, TENANT, done["merge_id"])
    s = w.store.state
    assert undone["moved"] == done["moved"]
    assert s.customers == before.customers
    assert s.visits == before.visits and s.sightings == before.sightings and s.views == before.views
    assert w.owners() == gallery_before
    with pytest.raises(Conflict):
        await w.merger.unmerge(ADMIN, TENANT, done["merge_id"])


async def test_an_unmerge_after_the_kept_person_moved_on_is_refused() -> None:
    w = World()
    a, b, c = [await w.person(days_ago=d) for d in (1, 2, 3)]
    first = await w.merger.merge(ADMIN, TENANT, a, b)
    await w.merger.merge(ADMIN, TENANT, c, a)
    snapshot = copy.deepcopy(w.store.state)
    with pytest.raises(Conflict):
        await w.merger.unmerge(ADMIN, TENANT, first["merge_id"])
    assert w.store.state == snapshot
    with pytest.raises(NotFound):
        await w.merger.unmerge(ADMIN, TENANT, uuid4())


@pytest.mark.parametrize("case", ["itself", "marked", "missing"])
async def test_a_refused_merge_changes_nothing(case: str) -> None:
    w = World()
    a, b = await w.person(days_ago=1), await w.person(days_ago=2)
    if case == "marked":
        assert await w.merger.mark_distinct(ADMIN, TENANT, b, a)
        assert not await w.merger.mark_distinct(ADMIN, TENANT, a, b)  # one mark per pair
    snapshot, gallery = copy.deepcopy(w.store.state), w.owners()
    other = {"itself": a, "marked": b, "missing": uuid4()}[case]
    error = {"itself": InvalidInput, "marked": Conflict, "missing": NotFound}[case]
    with pytest.raises(error):
        await w.merger.merge(ADMIN, TENANT, a, other)
    assert w.store.state == snapshot and w.owners() == gallery


async def test_a_gallery_failure_during_a_merge_commits_nothing() -> None:
    w = World()
    kept, merged = await w.person(days_ago=1), await w.person(days_ago=2)
    snapshot = copy.deepcopy(w.store.state)
    w.gallery.fail_next_insert = True
    with pytest.raises(TransientError):
        await w.merger.merge(ADMIN, TENANT, kept, merged)
    assert w.store.state == snapshot


async def test_another_tenants_admin_reaches_nothing() -> None:
    w = World()
    kept, merged = await w.person(days_ago=1), await w.person(days_ago=2)
    stranger = Principal(uuid4(), PrincipalKind.USER, Role.TENANT_ADMIN, uuid4())
    snapshot = copy.deepcopy(w.store.state)
    with pytest.raises(Forbidden):
        await w.merger.merge(stranger, TENANT, kept, merged)
    assert w.store.state == snapshot


def test_a_pair_is_ordered_one_way() -> None:
    a, b = uuid4(), uuid4()
    assert pair(a, b) == pair(b, a)


async def test_an_erasure_keeps_anonymous_visits_and_removes_the_person_everywhere() -> None:
    w = World()
    gone = await w.person(days_ago=5, visits=2, views=2)
    stays = await w.person(days_ago=4)
    mine = f"{TENANT}/{SITE}/cam/2026-11-25/t1.jpg"
    foreign = f"{uuid4()}/{SITE}/cam/2026-11-25/t2.jpg"
    for k in (mine, foreign):
        await w.objects.put(RAW, k, b"jpeg", "image/jpeg")
    w.store.add_view(gone, np.ones(128, np.float32), snapshot_key=mine)
    next(iter(w.store.state.sightings.values()))["snapshot_key"] = foreign
    await w.merger.mark_distinct(ADMIN, TENANT, gone, stays)

    receipt = await w.eraser.erase(ADMIN, TENANT, gone)
    s = w.store.state
    assert gone not in s.customers and stays in s.customers
    assert receipt["visits_anonymised"] == 2 and receipt["embeddings_deleted"] == 3
    assert sum(v["customer_id"] is None for v in s.visits.values()) == 2  # footfall stays true
    assert all(r["customer_id"] != gone for r in [*s.sightings.values(), *s.views.values()])
    assert not s.marks and gone not in w.owners()
    assert w.objects.keys(RAW) == {foreign}  # never an object outside the tenant
    action, target, details = s.audit[-1]
    assert action == "person.erase" and target == str(receipt["receipt_id"])
    assert str(gone) not in str(details)  # the audit names a receipt, not the person


async def test_an_erasure_whose_snapshots_cannot_be_deleted_commits_nothing() -> None:
    w = World()
    gone = await w.person(days_ago=5)
    key = f"{TENANT}/{SITE}/cam/2026-11-25/t1.jpg"
    await w.objects.put(RAW, key, b"jpeg", "image/jpeg")
    w.store.add_view(gone, np.ones(128, np.float32), snapshot_key=key)
    w.objects.fail_deletes = True
    with pytest.raises(TransientError, match="run it again"):
        await w.eraser.erase(ADMIN, TENANT, gone)
    assert gone in w.store.state.customers
    w.objects.fail_deletes = False
    await w.eraser.erase(ADMIN, TENANT, gone)  # the operator runs it again
    assert gone not in w.store.state.customers and not w.objects.keys(RAW)
