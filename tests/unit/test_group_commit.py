"""Group commit: an idle key's item starts at once, alone; items arriving while a key's slots are
busy leave together; a failure reaches exactly its own group."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from visitlens.identity.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.groups: list[tuple[str, list[int]]] = []
        self.release = asyncio.Event()
        self.running = 0
        self.most_running = 0

    async def run(self, key: str, items: Sequence[int]) -> list[int]:
        self.groups.append((key, list(items)))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
            if -1 in items:
                raise ValueError("bad group")
            return [i * 10 for i in items]
        finally:
            self.running -= 1


async def test_an_idle_key_starts_at_once_and_later_items_wait_for_a_slot_together() -> None:
    r = Recorder()
    commit: GroupCommit[str, int, int] = GroupCommit(r.run, max_items=3, slots=1)
    first = asyncio.create_task(commit.submit("a", 1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert r.groups == [("a", [1])]  # started alone, without waiting for company
    rest = [asyncio.create_task(commit.submit("a", i)) for i in range(2, 7)]
    await asyncio.sleep(0)
    assert r.groups == [("a", [1])]  # the slot is busy: they wait
    r.release.set()
    assert await first == 10 and await asyncio.gather(*rest) == [20, 30, 40, 50, 60]
    assert r.groups == [("a", [1]), ("a", [2, 3, 4]), ("a", [5, 6])]  # at most max_items
    assert commit.groups == 3


async def test_keys_are_independent_and_slots_bound_the_groups_running_per_key() -> None:
    r = Recorder()
    commit: GroupCommit[str, int, int] = GroupCommit(r.run, max_items=100, slots=2)
    tasks = []
    for wave in range(3):  # each wave arrives while the earlier ones are still running
        tasks += [asyncio.create_task(commit.submit(k, wave)) for k in ("a", "b")]
        for _ in range(3):
            await asyncio.sleep(0)
    assert r.most_running == 4  # two groups per key, the third wave waiting
    assert len(r.groups) == 4
    r.release.set()
    assert await asyncio.gather(*tasks) == [w * 10 for w in range(3) for _ in ("a", "b")]
    assert sorted(g for k, g in r.groups if k == "a") == [[0], [1], [2]]


async def test_a_failure_reaches_its_own_group_only() -> None:
    r = Recorder()
    commit: GroupCommit[str, int, int] = GroupCommit(r.run, max_items=2, slots=1)
    first = asyncio.create_task(commit.submit("a", 1))
    await asyncio.sleep(0)
    bad = [asyncio.create_task(commit.submit("a", i)) for i in (-1, 2)]
    good = asyncio.create_task(commit.submit("a", 3))
    r.release.set()
    assert await first == 10
    for task in bad:
        with pytest.raises(ValueError, match="bad group"):
            await task
    assert await good == 30


async def test_a_caller_that_goes_away_leaves_its_group_running() -> None:
    r = Recorder()
    commit: GroupCommit[str, int, int] = GroupCommit(r.run, max_items=10, slots=1)
    gone = asyncio.create_task(commit.submit("a", 1))
    await asyncio.sleep(0)
    stays = asyncio.create_task(commit.submit("a", 2))
    await asyncio.sleep(0)
    gone.cancel()
    r.release.set()
    assert await stays == 20
    assert [g for _, g in r.groups] == [[1], [2]]


async def test_a_result_count_that_does_not_fit_fails_the_group() -> None:
    async def short(key: str, items: Sequence[int]) -> list[int]:
        return []

    commit: GroupCommit[str, int, int] = GroupCommit(short, max_items=10, slots=1)
    with pytest.raises(RuntimeError, match="0 results for a group of 1"):
        await commit.submit("a", 1)


def test_a_group_holds_an_item_and_a_key_runs_a_group() -> None:
    async def run(key: str, items: Sequence[int]) -> list[int]:
        return list(items)

    with pytest.raises(ValueError, match="at least one"):
        GroupCommit(run, max_items=0, slots=1)
    with pytest.raises(ValueError, match="at least one"):
        GroupCommit(run, max_items=1, slots=0)
