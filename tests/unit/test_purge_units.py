"""The retention purge's decisions against in-memory fakes (no stack): what is old enough goes,
what is not stays, nothing outside the tenant is touched whatever a row says, survivors without a
row are found and reported, a failed deletion keeps the pointers for the next run (and fails its
tenant alone), a second run finds nothing, and a tick keeps within its time budget."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID, uuid4

from tests.fakes import FakeClock, FakeObjectStore, FakePurgeStore, SnapshotPointer
from visitlens.retention.purge import Purger, PurgeRun, key_date

RAW = "faces-raw"


def key(tenant: UUID, day: str, name: str = "t1") -> str:
    return f"{tenant}/{uuid4()}/{uuid4()}/{day}/{name}.jpg"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakePurgeStore()
        self.objects = FakeObjectStore()
        self.purger = Purger(self.store, self.objects, RAW, self.clock)
        self.a, self.b = uuid4(), uuid4()
        self.store.retention_days = {self.a: 30, self.b: 7}

    async def snapshot(self, tenant: UUID, days_ago: int, *, pointer: bool = True) -> str:
        at = self.clock.now() - timedelta(days=days_ago)
        k = key(tenant, at.date().isoformat())
        await self.objects.put(RAW, k, b"jpeg", "image/jpeg")
        if pointer:
            self.store.pointers.append(SnapshotPointer(tenant, k, at))
        return k


async def test_each_tenant_keeps_what_its_retention_allows() -> None:
    w = World()
    old_a, fresh_a = await w.snapshot(w.a, 31), await w.snapshot(w.a, 10)
    old_b, fresh_b = await w.snapshot(w.b, 10), await w.snapshot(w.b, 2)
    results = {r["tenant_id"]: r for r in (await w.purger.run()).results}
    assert w.objects.keys(RAW) == {fresh_a, fresh_b}
    assert old_a not in w.objects.keys(RAW) and old_b not in w.objects.keys(RAW)
    assert results[str(w.a)]["objects_deleted"] == 1 and results[str(w.a)]["pointers_cleared"] == 1
    assert all(r["survivors_remaining"] == 0 for r in results.values())
    assert [(t, action) for t, action, _ in w.store.audit] == [
        (min(w.a, w.b), "retention.purge"),
        (max(w.a, w.b), "retention.purge"),
    ]


async def test_an_object_without_a_row_is_a_survivor_found_and_deleted() -> None:
    w = World()
    orphan = await w.snapshot(w.a, 40, pointer=False)
    (result, _) = sorted((await w.purger.run()).results, key=lambda r: r["tenant_id"] != str(w.a))
    assert orphan not in w.objects.keys(RAW)
    assert result["survivors"] == 1 and result["survivors_remaining"] == 0


async def test_a_row_pointing_into_another_tenant_deletes_nothing_there() -> None:
    w = World()
    theirs = await w.snapshot(w.b, 1)  # fresh for B
    w.store.pointers.append(SnapshotPointer(w.a, theirs, w.clock.now() - timedelta(days=90)))
    await w.purger.run()
    assert theirs in w.objects.keys(RAW)


async def test_a_failed_deletion_keeps_the_pointers_and_the_next_run_finishes() -> None:
    w = World()
    old = await w.snapshot(w.a, 45)
    w.objects.fail_deletes = True
    failing = await w.purger.run()
    assert failing.failed == (w.a,) and [r["tenant_id"] for r in failing.results] == [str(w.b)]
    assert old in w.objects.keys(RAW)
    assert any(p.key == old for p in w.store.pointers)
    assert all(tenant != w.a for tenant, _, _ in w.store.audit)  # its run rolled back whole
    w.objects.fail_deletes = False
    await w.purger.run()
    assert old not in w.objects.keys(RAW) and all(p.key != old for p in w.store.pointers)


async def test_a_second_run_finds_nothing() -> None:
    w = World()
    for days in (40, 35, 3):
        await w.snapshot(w.a, days)
    await w.purger.run()
    w.clock.advance(hours=21)  # due again
    again = (await w.purger.run()).results
    assert len(again) == 2
    assert all(r["objects_deleted"] == 0 and r["pointers_cleared"] == 0 for r in again)


async def test_a_tenant_purged_within_the_interval_is_not_due_again() -> None:
    w = World()
    assert len((await w.purger.run()).results) == 2
    w.clock.advance(hours=1)
    assert await w.purger.run() == PurgeRun([], 0)  # the next hourly tick: nothing due
    w.clock.advance(hours=19)
    assert {r["tenant_id"] for r in (await w.purger.run()).results} == {str(w.a), str(w.b)}


class SlowDeletes(FakeObjectStore):
    """Every deletion takes three minutes of the clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    async def delete(self, bucket: str, keys: Sequence[str]) -> None:
        self.clock.advance(minutes=3)
        await super().delete(bucket, keys)


async def test_a_spent_budget_leaves_the_rest_for_the_next_tick_longest_waiting_first() -> None:
    """Knative caps a request at 600 s: a tick stops starting tenants once its budget is spent,
    and the next tick starts with those never purged, then the longest waiting."""
    w = World()
    w.objects = SlowDeletes(w.clock)  # 2 deletions per tenant: 6 minutes each
    c = uuid4()
    w.store.retention_days[c] = 30
    w.purger = Purger(w.store, w.objects, RAW, w.clock, budget=timedelta(minutes=8))
    first = await w.purger.run()
    assert len(first.results) == 2 and first.deferred == 1  # 6 min < 8: one more starts
    (waiting,) = {w.a, w.b, c} - {UUID(r["tenant_id"]) for r in first.results}
    w.clock.advance(hours=1)
    second = await w.purger.run()
    assert [r["tenant_id"] for r in second.results] == [str(waiting)] and second.deferred == 0
    w.clock.advance(hours=20)  # all due again: the oldest run goes first
    third = await w.purger.run()
    assert [UUID(r["tenant_id"]) for r in third.results] == [
        UUID(r["tenant_id"]) for r in first.results
    ] and third.deferred == 1


async def test_a_zero_budget_still_purges_one_tenant_per_tick() -> None:
    w = World()
    w.purger = Purger(w.store, w.objects, RAW, w.clock, budget=timedelta(0))
    assert [len(r.results) for r in [await w.purger.run(), await w.purger.run()]] == [1, 1]
    assert await w.purger.run() == PurgeRun([], 0)


def test_the_capture_date_is_read_from_the_key() -> None:
    assert str(key_date("t/s/c/2026-01-31/x.jpg")) == "2026-01-31"
    assert key_date("t/s/c/2026-02-31/x.jpg") is None and key_date("t/s/c/x.jpg") is None
