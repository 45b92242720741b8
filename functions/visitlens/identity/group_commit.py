"""Group commit: concurrent submissions under one key are worked in groups.

A submission on an idle key starts at once, alone (no timer, no added latency). While ``slots``
groups of its key are running, later submissions wait and leave together as the next group, up to
``max_items``: the busier the key, the larger the groups, so a fixed cost per group (a
transaction, a gallery round trip) is shared by more items exactly when it matters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Key(Generic[T, R]):
    waiting: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    running: int = 0


class GroupCommit(Generic[K, T, R]):
    """``run(key, items)`` answers a group with one result per item, in order; if it raises, every
    item of that group gets the exception. So ``run`` answers an item's own failure as that
    item's result and raises only what would fail each item alike (a dependency down):
    :meth:`visitlens.identity.ingest.IngestService._ingest_checked` works a failed group again
    item by item to tell the two apart."""

    def __init__(
        self,
        run: Callable[[K, Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_items: int,
        slots: int,
    ) -> None:
        if max_items < 1 or slots < 1:
            raise ValueError("a group holds at least one item and a key runs at least one group")
        self._run = run
        self._max_items = max_items
        self._slots = slots
        self._keys: dict[K, _Key[T, R]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.groups = 0
        """Groups run so far (a measure of how much was shared)."""

    async def submit(self, key: K, item: T) -> R:
        state = self._keys.setdefault(key, _Key())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        state.waiting.append((item, future))
        if state.running < self._slots:
            state.running += 1
            task = asyncio.create_task(self._drain(key, state))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)
        # A caller that goes away (a closed connection) does not take its group down with it:
        # the item is worked and its result dropped, as if it had been answered.
        return await asyncio.shield(future)

    async def _drain(self, key: K, state: _Key[T, R]) -> None:
        try:
            while state.waiting:
                group = state.waiting[: self._max_items]
                del state.waiting[: self._max_items]
                self.groups += 1
                try:
                    results = await self._run(key, [item for item, _ in group])
                except Exception as exc:  # handed to every waiter: none is left hanging
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:  # cancelled: the waiters must not wait for ever
                    for _, future in group:
                        future.cancel()
                    raise
                if len(results) != len(group):
                    error = RuntimeError(f"{len(results)} results for a group of {len(group)}")
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            state.running -= 1
            if state.running == 0:
                for _, future in state.waiting:  # only after a cancellation
                    future.cancel()
                if self._keys.get(key) is state:
                    del self._keys[key]
