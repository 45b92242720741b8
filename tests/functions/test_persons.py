"""The `merge` and `erase` functions through functions-framework, on data made by the real
`ingest` function: merge and unmerge keep every row and vector consistent, not-same marks block a
merge, and an erasure leaves nothing of the person in PostgreSQL, Milvus or S3 but the counts."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from minio import Minio

from tests.conftest import TenantWorld, function_clients, ok
from tests.functions.test_ingest import T0, person, send, track_event, view_of
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.gallery import MilvusGallery
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.ports import DbScope
from visitlens.reports.stats import rematerialise
from visitlens_dev.stack import s3 as s3_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients("ingest", "merge", "erase") as made:
        yield made


async def ingest_people(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld, minio: Minio, settings: Settings
) -> dict[str, Any]:
    """P: two visits an hour apart; Q: one visit; each pass with a real snapshot in faces-raw."""
    p, q = person(), person()
    out: dict[str, Any] = {"p_vec": p, "q_vec": q, "keys": []}
    for identity, start, name in ((p, T0, "p"), (p, T0 + timedelta(hours=1), "p"),
                                  (q, T0 + timedelta(minutes=5), "q")):  # fmt: skip
        key = f"{world.tenant_id}/{world.site_a}/{world.camera_a}/2026-11-20/{uuid.uuid4().hex}.jpg"
        minio.put_object(settings.s3.raw_bucket, key, io.BytesIO(b"jpeg"), 4)
        out["keys"].append((name, key))
        event = track_event(world, identity, start, snapshot_key=key)
        response = await send(clients["ingest"], event, world.worker_a)
        assert response.status_code == 200, response.text
        out[name] = uuid.UUID(response.json()["customer_id"])
    return out


async def person_rows(db: Database, world: TenantWorld, who: uuid.UUID) -> dict[str, int]:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table} WHERE customer_id = $1", who)
            for table in ("sightings", "visits", "person_embeddings")
        }


async def totals(db: Database, world: TenantWorld) -> tuple[int, int]:
    """(visits in the hourly statistics, distinct visitors) after a re-materialisation."""
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        await rematerialise(conn, T0 - timedelta(days=1), T0 + timedelta(days=1))
        visits = await conn.fetchval("SELECT coalesce(sum(visits), 0)::int FROM visit_stats_hourly")
        uniques = await conn.fetchval(
            "SELECT count(DISTINCT customer_id) + count(*) FILTER (WHERE customer_id IS NULL) "
            "FROM visits"
        )
    return int(visits), int(uniques)


def gallery(endpoints: Endpoints, settings: Settings) -> MilvusGallery:
    return MilvusGallery(endpoints.milvus_uri, settings.milvus, "sface-2021dec", 128)


async def nearest(g: MilvusGallery, world: TenantWorld, vector: np.ndarray) -> set[uuid.UUID]:
    await g.flush()
    hits = await g.search(uuid.UUID(world.tenant_id), vector[None, :].astype(np.float32), 5)
    return {h.person_id for h in hits[0] if h.similarity > 0.5}


async def test_merge_unmerge_and_not_same(
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    db: Database,
    stack_settings: Settings,
    endpoints: Endpoints,
) -> None:
    minio = s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)
    made = await ingest_people(clients, world, minio, stack_settings)
    p, q = made["p"], made["q"]
    assert p != q
    before_p, before_q = await person_rows(db, world, p), await person_rows(db, world, q)
    assert await totals(db, world) == (3, 2)
    merge = clients["merge"]
    path = f"/v1/persons/{world.tenant_id}"
    admin = world.auth(world.admin)

    result = await ok(await merge.post(f"{path}/merge", headers=admin,
                                       json={"kept_id": str(p), "merged_id": str(q)}))  # fmt: skip
    assert result["moved"] == {
        "visits": 1,
        "sightings": 1,
        "embeddings": before_q["person_embeddings"],
    }
    after = await person_rows(db, world, p)
    assert after == {k: before_p[k] + before_q[k] for k in after}
    assert await person_rows(db, world, q) == {"sightings": 0, "visits": 0, "person_embeddings": 0}
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        flags = await conn.fetch(
            "SELECT is_new FROM visits WHERE customer_id = $1 ORDER BY started_at", p
        )
        assert [f["is_new"] for f in flags] == [True, False, False]
        assert await conn.fetchval("SELECT visit_count FROM customers WHERE id = $1", p) == 3
        assert not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)", q)
    g = gallery(endpoints, stack_settings)
    assert await nearest(g, world, view_of(made["q_vec"], 0.95)) == {p}
    assert await totals(db, world) == (3, 1)

    undone = await ok(await merge.post(f"{path}/merges/{result['merge_id']}/undo", headers=admin))
    assert undone["moved"] == result["moved"]
    assert await person_rows(db, world, p) == before_p
    assert await person_rows(db, world, q) == before_q
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        assert await conn.fetchval("SELECT is_new FROM visits WHERE customer_id = $1", q) is True
    assert await nearest(g, world, view_of(made["q_vec"], 0.95)) == {q}
    assert await totals(db, world) == (3, 2)
    again = await merge.post(f"{path}/merges/{result['merge_id']}/undo", headers=admin)
    assert again.status_code == 409

    marked = await merge.post(f"{path}/not-same", headers=admin,
                              json={"person_a": str(q), "person_b": str(p)})  # fmt: skip
    assert marked.status_code == 201
    blocked = await merge.post(f"{path}/merge", headers=admin,
                               json={"kept_id": str(p), "merged_id": str(q)})  # fmt: skip
    assert blocked.status_code == 409 and "different people" in blocked.text
    assert await person_rows(db, world, q) == before_q  # nothing changed

    # roles and bad input
    body = {"kept_id": str(p), "merged_id": str(q)}
    assert (await merge.post(f"{path}/merge", json=body)).status_code == 401
    assert (
        await merge.post(f"{path}/merge", headers=world.auth(world.manager_a), json=body)
    ).status_code == 403
    assert (
        await merge.post(
            f"{path}/merge", headers=admin, json={"kept_id": str(p), "merged_id": str(p)}
        )
    ).status_code == 422
    assert (
        await merge.post(
            f"{path}/merge", headers=admin, json={"kept_id": str(p), "merged_id": str(uuid.uuid4())}
        )
    ).status_code == 404
    assert (
        await merge.post(f"{path}/merge", headers=admin, json={"kept_id": "x"})
    ).status_code == 422


async def test_erasure_leaves_nothing_but_counts(
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    db: Database,
    stack_settings: Settings,
    endpoints: Endpoints,
) -> None:
    minio = s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)
    made = await ingest_people(clients, world, minio, stack_settings)
    p = made["p"]
    assert await totals(db, world) == (3, 2)
    erase = clients["erase"]
    path = f"/v1/erasure/{world.tenant_id}"
    assert (
        await erase.post(path, headers=world.auth(world.manager_a), json={"customer_id": str(p)})
    ).status_code == 403
    receipt = await ok(
        await erase.post(path, headers=world.auth(world.admin), json={"customer_id": str(p)})
    )
    assert receipt["visits_anonymised"] == 2 and receipt["snapshots_deleted"] == 2

    # PostgreSQL: no row of any table mentions the person (visits stay, without a person)
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]  # fmt: skip
        for table in tables:
            if table == "alembic_version":
                continue
            found = await conn.fetchval(
                f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'", str(p)
            )
            assert found == 0, table
        assert await conn.fetchval("SELECT count(*) FROM visits WHERE customer_id IS NULL") == 2
    # Milvus: none of their vectors; S3: none of their snapshots (Q's stays)
    assert p not in await nearest(
        gallery(endpoints, stack_settings), world, view_of(made["p_vec"], 0.95)
    )
    for name, key in made["keys"]:
        present = any(o.object_name == key for o in minio.list_objects(
            stack_settings.s3.raw_bucket, prefix=key))  # fmt: skip
        assert present == (name == "q"), key
    # the counts stay: 3 visits, and the two anonymous ones count as two visitors
    assert await totals(db, world) == (3, 3)
    assert (
        await erase.post(path, headers=world.auth(world.admin), json={"customer_id": str(p)})
    ).status_code == 404


async def test_identity_decisions_can_be_audited(
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    stack_settings: Settings,
    minio_client: Minio,
) -> None:
    """Customers with first/last seen, visit count and views; a person's sightings with each
    decision and its similarity; tenant admins only."""
    made = await ingest_people(clients, world, minio_client, stack_settings)
    merge = clients["merge"]
    path = f"/v1/persons/{world.tenant_id}/customers"
    first = await ok(await merge.get(path, headers=world.auth(world.admin), params={"limit": 1}))
    assert len(first["items"]) == 1 and first["next_cursor"]
    rest = await ok(await merge.get(path, headers=world.auth(world.admin),
                                    params={"cursor": first["next_cursor"]}))  # fmt: skip
    people = {c["id"]: c for c in first["items"] + rest["items"]}
    p = people[str(made["p"])]
    assert p["visit_count"] == 2 and p["views"] >= 1 and p["last_seen_at"] > p["first_seen_at"]
    sightings = await ok(
        await merge.get(f"{path}/{made['p']}/sightings", headers=world.auth(world.admin))
    )
    decisions = [(s["decision"], s["similarity"]) for s in sightings["items"]]
    assert decisions[0] == ("new_customer", None)
    assert decisions[1][0] == "returning_customer" and decisions[1][1] >= 0.415
    assert (await merge.get(path, headers=world.auth(world.manager_a))).status_code == 403
    missing = await merge.get(f"{path}/{uuid.uuid4()}/sightings", headers=world.auth(world.admin))
    assert missing.status_code == 404


def strict_ingest() -> httpx.AsyncClient:
    """The ingest function as composed for production, with an open-set target so strict that
    even a gallery of a few views has a wide review band (a chain's gallery of 100k views has
    it at the default target: ``results.scale``). Built when the gallery already holds views: a
    function counts a tenant's gallery on its first event and then only now and then."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    from visitlens import wiring
    from visitlens.config import load_settings

    settings = load_settings()
    identity = settings.identity.model_copy(update={"target_false_link_rate": 1e-9})
    handler = wiring.function("ingest", settings.model_copy(update={"identity": identity}))
    app = Starlette(routes=[Route("/{path:path}", handler, methods=["POST"])])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest.test")


async def test_a_pass_in_the_review_band_is_a_likely_duplicate_until_someone_decides(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld
) -> None:
    """A pass too weak to link on but close to a customer starts a new customer and is listed
    with that customer; "not the same person" takes the pair off the list, and a merge or an
    erasure of either takes it away for good."""
    path, admin = f"/v1/persons/{world.tenant_id}", world.auth(world.admin)

    p = person()
    event = track_event(world, p, T0, snapshot_key=None)
    response = await send(clients["ingest"], event, world.worker_a)  # the gallery's first views
    assert response.status_code == 200, response.text
    first = uuid.UUID(response.json()["customer_id"])
    strict = strict_ingest()

    async def arrive(identity: np.ndarray, hours: int) -> uuid.UUID:
        event = track_event(world, identity, T0 + timedelta(hours=hours), snapshot_key=None)
        response = await send(strict, event, world.worker_a)
        assert response.status_code == 200, response.text
        return uuid.UUID(response.json()["customer_id"])

    async def listed() -> list[tuple[str, str, float]]:
        page = await ok(await clients["merge"].get(f"{path}/duplicates", headers=admin))
        return [(d["customer"]["id"], d["candidate"]["id"], d["similarity"]) for d in page["items"]]

    second = await arrive(view_of(p, 0.75), 2)  # ≈ 0.54 to the first's views: in the band
    stranger = await arrive(person(), 4)  # ≈ 0: no suggestion
    assert len({first, second, stranger}) == 3
    pairs = await listed()
    assert [(a, b) for a, b, _ in pairs] == [(str(second), str(first))]
    assert 0.415 <= pairs[0][2] < 0.7
    page = await ok(await clients["merge"].get(f"{path}/duplicates", headers=admin))
    assert page["items"][0]["customer"]["visit_count"] == 1
    assert page["items"][0]["candidate"]["snapshot_sighting_id"] is None  # no snapshot kept
    manager = world.auth(world.manager_a)  # the review is the tenant admin's
    assert (await clients["merge"].get(f"{path}/duplicates", headers=manager)).status_code == 403

    await ok(await clients["merge"].post(f"{path}/not-same", headers=admin, json={
        "person_a": str(first), "person_b": str(second)}), 201)  # fmt: skip
    assert await listed() == []

    third = await arrive(view_of(p, 0.75), 6)  # another look-alike of the first: a new pair
    assert [(a, b) for a, b, _ in await listed()] == [(str(third), str(first))]
    await ok(await clients["merge"].post(f"{path}/merge", headers=admin,
                                         json={"kept_id": str(first), "merged_id": str(third)}))  # fmt: skip
    assert await listed() == []

    fourth = await arrive(view_of(p, 0.75), 8)
    assert [(a, b) for a, b, _ in await listed()] == [(str(fourth), str(first))]
    await ok(await clients["erase"].post(f"/v1/erasure/{world.tenant_id}", headers=admin,
                                         json={"customer_id": str(fourth)}))  # fmt: skip
    assert await listed() == []
    await strict.aclose()
