"""The Milvus gallery on the embedded Milvus Lite server: tenant isolation, kinds, deletes, and
refusal to mix embedding spaces."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.gallery import MilvusGallery
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.config import Settings
from visitlens.errors import Forbidden, InvalidInput
from visitlens.ports import GalleryRow, PersonKind

pytestmark = pytest.mark.integration
rng = np.random.default_rng(11)


def unit(n: int, dim: int = 128) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


@pytest.fixture
async def gallery(stack_settings: Settings, endpoints: Endpoints) -> AsyncIterator[MilvusGallery]:
    g = MilvusGallery(
        endpoints.milvus_uri, stack_settings.milvus, f"test-{uuid.uuid4().hex[:8]}", 128
    )
    yield g
    await g.close()


async def test_search_never_leaves_the_tenant(gallery: MilvusGallery) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    vectors = unit(40)
    people = [uuid.uuid4() for _ in range(40)]
    rows = [
        GalleryRow(uuid.uuid4(), tenant_a if i % 2 == 0 else tenant_b, people[i],
                   PersonKind.STAFF if i % 10 == 0 else PersonKind.CUSTOMER, vectors[i])
        for i in range(40)
    ]  # fmt: skip
    await gallery.insert(rows)
    # Query with tenant B's own vectors, but searching as tenant A: nothing of B may come back.
    hits = await gallery.search(tenant_a, vectors[1::2], top_k=10)
    a_people = {people[i] for i in range(0, 40, 2)}
    assert all(h.person_id in a_people for per in hits for h in per)
    nearest = await gallery.nearest_views(tenant_a, vectors[1::2], top_k=10)  # keys only
    assert [{n.view_id for n in per} for per in nearest] == [
        {h.view_id for h in per} for per in hits
    ]
    own = await gallery.search(tenant_b, vectors[1:2], top_k=1)
    assert own[0][0].person_id == people[1] and own[0][0].similarity == pytest.approx(1.0, abs=1e-4)
    staff_only = await gallery.search(tenant_a, vectors[:1], top_k=10, kind=PersonKind.STAFF)
    assert {h.kind for h in staff_only[0]} == {PersonKind.STAFF}

    await gallery.delete_person(tenant_a, people[0])
    after = await gallery.search(tenant_a, vectors[:1], top_k=5)
    assert people[0] not in {h.person_id for h in after[0]}
    # Deleting "as tenant B" cannot touch tenant A's rows.
    await gallery.delete_person(tenant_b, people[2])
    still = await gallery.search(tenant_a, vectors[2:3], top_k=1)
    assert still[0][0].person_id == people[2]


async def test_embedding_spaces_never_mix(
    gallery: MilvusGallery, stack_settings: Settings, endpoints: Endpoints
) -> None:
    tenant = uuid.uuid4()
    with pytest.raises(InvalidInput):
        await gallery.search(tenant, unit(1, dim=512), top_k=5)
    with pytest.raises(InvalidInput):
        await gallery.insert([GalleryRow(uuid.uuid4(), tenant, uuid.uuid4(), PersonKind.CUSTOMER,
                                         rng.normal(size=128).astype(np.float32))])  # fmt: skip
    await gallery.insert(
        [GalleryRow(uuid.uuid4(), tenant, uuid.uuid4(), PersonKind.CUSTOMER, unit(1)[0])]
    )
    same_name_other_dim = MilvusGallery(
        endpoints.milvus_uri, stack_settings.milvus, gallery.model_id, 512
    )
    with pytest.raises(InvalidInput, match="128-D"):
        await same_name_other_dim.client()


async def test_global_search_is_for_system_admins(gallery: MilvusGallery) -> None:
    admin = Principal(uuid.uuid4(), PrincipalKind.USER, Role.TENANT_ADMIN, uuid.uuid4())
    with pytest.raises(Forbidden):
        await gallery.global_search(admin, unit(1), 5)
    root = Principal(uuid.uuid4(), PrincipalKind.USER, Role.SYSTEM_ADMIN, None)
    assert await gallery.global_search(root, unit(1), 5) == [[]]


async def test_coalesced_searches_keep_tenants_apart(gallery: MilvusGallery) -> None:
    tenants = [uuid.uuid4(), uuid.uuid4()]
    vectors = unit(60)
    people = [uuid.uuid4() for _ in range(60)]
    await gallery.insert(
        [
            GalleryRow(uuid.uuid4(), tenants[i % 2], people[i], PersonKind.CUSTOMER, vectors[i])
            for i in range(60)
        ]
    )
    calls = 0
    original = gallery._milvus_search

    async def counting(
        vectors: np.ndarray, top_k: int, expression: str, fields: list[str]
    ) -> list[list[Any]]:
        nonlocal calls
        calls += 1
        return await original(vectors, top_k, expression, fields)

    gallery._milvus_search = counting  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(gallery.search(tenants[i % 2], vectors[i : i + 1], top_k=3) for i in range(40))
    )
    for i, per_query in enumerate(results):
        own = {people[j] for j in range(i % 2, 60, 2)}
        assert per_query[0][0].person_id == people[i]  # each query finds itself first
        assert all(h.person_id in own for h in per_query[0])
    assert calls < 40, "concurrent searches were not coalesced"


async def test_discarded_views_are_deleted_together_later_and_only_in_their_tenant(
    gallery: MilvusGallery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visitlens.adapters import gallery as module

    monkeypatch.setattr(module, "DISCARD_EVERY_S", 0.05)
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    vectors = unit(6)
    a_rows = [GalleryRow(uuid.uuid4(), tenant_a, uuid.uuid4(), PersonKind.CUSTOMER, v)
              for v in vectors[:4]]  # fmt: skip
    b_row = GalleryRow(uuid.uuid4(), tenant_b, uuid.uuid4(), PersonKind.CUSTOMER, vectors[4])
    await gallery.insert([*a_rows, b_row])
    gallery.discard_views(tenant_a, [a_rows[0].view_id])  # returns at once: nothing awaited
    gallery.discard_views(tenant_a, [a_rows[1].view_id])
    gallery.discard_views(tenant_a, [b_row.view_id])  # B's view named as A's: never deleted
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        found = {h.view_id for per in await gallery.search(tenant_a, vectors[:2], 4) for h in per}
        if not found & {a_rows[0].view_id, a_rows[1].view_id}:
            break
        assert asyncio.get_running_loop().time() < deadline, "discarded views still found"
        await asyncio.sleep(0.05)
    assert {a_rows[2].view_id, a_rows[3].view_id} <= found
    still = await gallery.search(tenant_b, vectors[4:5], 1)
    assert still[0][0].view_id == b_row.view_id


async def test_discarded_views_are_deleted_at_a_clean_stop(
    stack_settings: Settings, endpoints: Endpoints
) -> None:
    model = f"test-{uuid.uuid4().hex[:8]}"
    first = MilvusGallery(endpoints.milvus_uri, stack_settings.milvus, model, 128)
    tenant = uuid.uuid4()
    rows = [GalleryRow(uuid.uuid4(), tenant, uuid.uuid4(), PersonKind.CUSTOMER, v)
            for v in unit(2)]  # fmt: skip
    await first.insert(rows)
    first.discard_views(tenant, [rows[0].view_id])
    await first.close()  # before the background round came
    second = MilvusGallery(endpoints.milvus_uri, stack_settings.milvus, model, 128)
    try:
        hits = await second.search(tenant, np.stack([r.embedding for r in rows]), 2)
        assert {h.view_id for per in hits for h in per} == {rows[1].view_id}
    finally:
        await second.close()
