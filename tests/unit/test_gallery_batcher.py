"""The gallery's search batcher survives what it does not expect: a failing call fails only its
own waiters (it used to end the batcher, and every later search waited for ever), and the
primary key is read whether the server names it (Milvus Lite) or calls it ``id`` (a Milvus
server)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import numpy as np
import pytest

from visitlens.adapters.gallery import MilvusGallery
from visitlens.config import MilvusSettings
from visitlens.errors import TransientError
from visitlens.ports import GalleryRow, PersonKind


class FlakyMilvus:
    """Answers the first search with an error no driver documents, then as a Milvus server."""

    def __init__(self, person: uuid.UUID, view: uuid.UUID) -> None:
        self.calls = 0
        self.person, self.view = person, view

    async def search(self, *args: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("view_id")  # e.g. a result shape this code did not know
        hit = {"id": str(self.view), "distance": 1.0000001,
               "entity": {"person_id": str(self.person), "kind": "customer"}}  # fmt: skip
        return [[hit] for _ in kwargs["data"]]


async def test_a_failed_search_does_not_stop_the_batcher() -> None:
    gallery = MilvusGallery("http://127.0.0.1:9", MilvusSettings(), "m", 4)
    person, view = uuid.uuid4(), uuid.uuid4()
    gallery._client = FlakyMilvus(person, view)
    probe = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    with pytest.raises(TransientError):
        await asyncio.wait_for(gallery.search(uuid.uuid4(), probe, 5), timeout=5)
    hits = await asyncio.wait_for(gallery.search(uuid.uuid4(), probe, 5), timeout=5)
    assert hits[0][0].view_id == view and hits[0][0].person_id == person
    assert hits[0][0].similarity == 1.0  # an ulp above 1 is clamped


class CountingMilvus:
    """Answers every query vector with one hit naming the filter it was asked under."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def search(self, *args: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
        self.calls.append((kwargs["filter"], len(kwargs["data"])))
        await asyncio.sleep(0.01)
        hit = {"id": str(uuid.uuid4()), "distance": 0.5,
               "entity": {"person_id": str(uuid.uuid4()), "kind": "customer"}}  # fmt: skip
        return [[hit] for _ in kwargs["data"]]


async def test_a_tenants_searches_go_at_once_and_those_arriving_meanwhile_go_together() -> None:
    gallery = MilvusGallery("http://127.0.0.1:9", MilvusSettings(searches_per_filter=1), "m", 4)
    milvus = CountingMilvus()
    gallery._client = milvus
    probe = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    one, other = uuid.uuid4(), uuid.uuid4()
    first = asyncio.create_task(gallery.search(one, probe, 5))
    await asyncio.sleep(0.002)  # on its way to Milvus, alone
    answers = await asyncio.gather(
        first, gallery.search(one, np.repeat(probe, 2, axis=0), 5),
        gallery.search(one, probe, 5), gallery.search(other, probe, 5),
    )  # fmt: skip
    assert [len(a) for a in answers] == [1, 2, 1, 1]  # each its own query vectors' hits
    calls = sorted((one_filter.count(str(one)) == 1, n) for one_filter, n in milvus.calls)
    # tenant one: the first at once, the two arriving while it ran as one call; the other apart
    assert calls == [(False, 1), (True, 1), (True, 3)]


def test_recent_views_are_forgotten_for_every_tenant() -> None:
    """The read-your-writes memory keeps RECENT_S of views, also of tenants that never search."""
    import time
    import uuid

    import numpy as np

    from visitlens.adapters.gallery import RECENT_S, MilvusGallery, _RecentViews
    from visitlens.config import MilvusSettings
    from visitlens.ports import GalleryRow, PersonKind

    gallery = MilvusGallery("http://127.0.0.1:1", MilvusSettings(), "m", 4)
    old, fresh = uuid.uuid4(), uuid.uuid4()
    vector = np.array([1, 0, 0, 0], np.float32)
    row = GalleryRow(uuid.uuid4(), old, uuid.uuid4(), PersonKind.CUSTOMER, vector)
    gallery._recent[old] = _RecentViews(4)
    gallery._recent[old].add(time.monotonic() - RECENT_S - 1, [row])
    gallery._recent[fresh] = _RecentViews(4)
    gallery._recent[fresh].add(time.monotonic(), [row])
    gallery._expire(time.monotonic() - RECENT_S)
    assert old not in gallery._recent and len(gallery._recent[fresh]) == 1


def test_merging_recent_rows_keeps_exactly_the_best_of_the_union() -> None:
    """The instance's own recent views merged into the server's hits: the top-k of the union,
    each view once — computed from only the top-k recent rows per query."""
    from uuid import uuid4

    import numpy as np

    from visitlens.adapters.gallery import _merged, _row_hit
    from visitlens.ports import GalleryRow, Hit, PersonKind

    rng = np.random.default_rng(3)

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, 16)).astype(np.float32)
        out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    tenant = uuid4()
    rows = [GalleryRow(uuid4(), tenant, uuid4(), PersonKind.CUSTOMER, e) for e in unit(300)]
    queries = unit(5)
    top_k = 10
    server = []  # the server saw some of the recent rows too (same ids), and others of its own
    for q in queries:
        own = [Hit(uuid4(), uuid4(), PersonKind.CUSTOMER, float(s)) for s in rng.uniform(0, 1, 8)]
        shared = [Hit(r.view_id, r.person_id, r.kind, float(r.embedding @ q)) for r in rows[:3]]
        server.append(sorted([*own, *shared], key=lambda h: -h.similarity)[:top_k])
    matrix = np.stack([r.embedding for r in rows])
    merged = _merged(server, queries, rows, matrix, top_k, _row_hit)
    for q, per, got in zip(queries, server, merged, strict=True):
        union = {h.view_id: h.similarity for h in per}
        for r in rows:
            union.setdefault(r.view_id, float(np.clip(r.embedding @ q, -1, 1)))
        expected = sorted(union.items(), key=lambda kv: -kv[1])[:top_k]
        assert [h.view_id for h in got] == [v for v, _ in expected]
        assert len({h.view_id for h in got}) == len(got)


def test_recent_views_expire_in_order_filter_by_kind_and_forget_in_step() -> None:
    """The recent views' matrix stays row for row with its views through appends, expiry, a kind
    filter and forgetting."""
    from uuid import uuid4

    import numpy as np

    from visitlens.adapters.gallery import _RecentViews
    from visitlens.ports import GalleryRow, PersonKind

    tenant = uuid4()
    eye = np.eye(6, dtype=np.float32)
    kinds = [PersonKind.CUSTOMER, PersonKind.STAFF] * 3
    rows = [GalleryRow(uuid4(), tenant, uuid4(), kinds[i], eye[i]) for i in range(6)]
    recent = _RecentViews(6)
    recent.add(1.0, rows[:2])
    recent.add(2.0, rows[2:4])
    recent.add(3.0, rows[4:])
    recent.expire(2.0)  # inserted before t=2: gone
    assert [r.view_id for r in recent.rows] == [r.view_id for r in rows[2:]]
    staff, matrix = recent.of_kind(PersonKind.STAFF)
    assert [r.view_id for r in staff] == [rows[3].view_id, rows[5].view_id]
    assert np.array_equal(matrix, eye[[3, 5]])
    recent.keep([r.view_id != rows[4].view_id for r in recent.rows])
    everyone, matrix = recent.of_kind(None)
    assert [r.view_id for r in everyone] == [rows[2].view_id, rows[3].view_id, rows[5].view_id]
    assert np.array_equal(matrix, eye[[2, 3, 5]])
    recent.expire(10.0)
    assert len(recent) == 0 and recent.matrix.shape == (0, 6)


def test_recent_views_stay_row_for_row_through_many_appends_expiries_and_forgets() -> None:
    """A long run of inserts, expiries and forgetting (the buffer's window moving, compacting and
    growing): the matrix is always exactly the live views' vectors, oldest first."""
    from uuid import uuid4

    import numpy as np

    from visitlens.adapters.gallery import _RecentViews
    from visitlens.ports import GalleryRow, PersonKind

    rng = np.random.default_rng(7)
    tenant, recent = uuid4(), _RecentViews(8)
    live: list[tuple[float, GalleryRow]] = []
    for step in range(400):
        now = float(step)
        batch = [GalleryRow(uuid4(), tenant, uuid4(), PersonKind.CUSTOMER,
                            rng.normal(size=8).astype(np.float32))
                 for _ in range(int(rng.integers(1, 40)))]  # fmt: skip
        recent.add(now, batch)
        live.extend((now, row) for row in batch)
        recent.expire(now - 5.0)
        live = [(t, r) for t, r in live if t >= now - 5.0]
        if step % 37 == 0:  # forget every third live view
            gone = {r.view_id for _, r in live[::3]}
            recent.keep([r.view_id not in gone for r in recent.rows])
            live = [(t, r) for t, r in live if r.view_id not in gone]
        assert [r.view_id for r in recent.rows] == [r.view_id for _, r in live]
        expected = np.stack([r.embedding for _, r in live]).astype(np.float32)
        assert np.array_equal(recent.matrix, expected)
        assert np.array_equal(recent.times, [t for t, _ in live])


class UnreachableMilvus:
    """What pymilvus sometimes lets through while the server is down: gRPC's own error."""

    @staticmethod
    def _refused() -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
            details="failed to connect to all addresses",
        )  # fmt: skip

    async def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refused()

    async def insert(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refused()

    async def search(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refused()


async def test_a_raw_grpc_failure_is_unavailability_never_a_crash() -> None:
    """The fault suite's Milvus outage once answered 500: ingest's clean-up delete got a raw
    ``AioRpcError``, which only a MilvusException handler stood in front of."""
    gallery = MilvusGallery("http://127.0.0.1:9", MilvusSettings(), "m", 4)
    gallery._client = UnreachableMilvus()
    vector = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    row = GalleryRow(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), PersonKind.CUSTOMER, vector)
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        await gallery.delete_views(uuid.uuid4(), [uuid.uuid4()])
    with pytest.raises(TransientError, match="UNAVAILABLE"):
        await gallery.insert([row])
    with pytest.raises(TransientError):
        await asyncio.wait_for(gallery.search(uuid.uuid4(), vector[None, :], 5), timeout=5)
