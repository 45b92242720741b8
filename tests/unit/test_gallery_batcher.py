"""The gallery's search batcher survives what it does not expect: a failing call fails only its
own waiters (it used to end the batcher, and every later search waited for ever), and the
primary key is read whether the server names it (Milvus Lite) or calls it ``id`` (a Milvus
server)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

from visitlens.adapters.gallery import MilvusGallery
from visitlens.config import MilvusSettings
from visitlens.errors import TransientError


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
    gallery = MilvusGallery("http://127.0.0.1:9", MilvusSettings(search_batch_window_ms=2), "m", 4)
    person, view = uuid.uuid4(), uuid.uuid4()
    gallery._client = FlakyMilvus(person, view)
    probe = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    with pytest.raises(TransientError):
        await asyncio.wait_for(gallery.search(uuid.uuid4(), probe, 5), timeout=5)
    hits = await asyncio.wait_for(gallery.search(uuid.uuid4(), probe, 5), timeout=5)
    assert hits[0][0].view_id == view and hits[0][0].person_id == person
    assert hits[0][0].similarity == 1.0  # an ulp above 1 is clamped


def test_recent_views_are_forgotten_for_every_tenant() -> None:
    """The read-your-writes memory keeps RECENT_S of views, also of tenants that never search."""
    import time
    import uuid
    from collections import deque

    import numpy as np

    from visitlens.adapters.gallery import RECENT_S, MilvusGallery
    from visitlens.config import MilvusSettings
    from visitlens.ports import GalleryRow, PersonKind

    gallery = MilvusGallery("http://127.0.0.1:1", MilvusSettings(), "m", 4)
    old, fresh = uuid.uuid4(), uuid.uuid4()
    vector = np.array([1, 0, 0, 0], np.float32)
    row = GalleryRow(uuid.uuid4(), old, uuid.uuid4(), PersonKind.CUSTOMER, vector)
    gallery._recent[old] = deque([(time.monotonic() - RECENT_S - 1, row)])
    gallery._recent[fresh] = deque([(time.monotonic(), row)])
    gallery._expire(time.monotonic() - RECENT_S)
    assert old not in gallery._recent and len(gallery._recent[fresh]) == 1
