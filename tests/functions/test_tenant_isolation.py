"""Tenant isolation through the HTTP surface (not only RLS): tenant A's admin, site manager and
worker aim every operation of every function at tenant B's ids — in the path, the query, the body,
a CloudEvent's source and data, object keys and the live monitor — and B's data (every row, every
object, the gallery) is byte-identical afterwards."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from minio import Minio

from tests.conftest import SHARED, TenantWorld, function_clients, make_world, ok
from tests.functions.test_ingest import T0, person, send, track_event
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.gallery import MilvusGallery
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.http.surface import all_routes
from visitlens.ports import DbScope
from visitlens.reports.stats import drain_dirty

pytestmark = pytest.mark.integration

FUNCTIONS = {
    "/v1/match": "match",
    "/v1/staff": "enroll-staff",
    "/v1/persons": "merge",
    "/v1/erasure": "erase",
    "/v1/aggregate": "aggregate",
    "/v1/events": "ingest",
}
_PARAM = re.compile(r"\{([a-z_]+)(?::[a-z]+)?\}")


def fill(path: str, values: dict[str, str]) -> str:
    """``path`` with its parameters taken from ``values`` (a fresh UUID for any other)."""
    return _PARAM.sub(lambda m: values.get(m.group(1), str(uuid.uuid4())), path)


def function_of(path: str) -> str:
    return next((fn for prefix, fn in FUNCTIONS.items() if path.startswith(prefix)), "api")


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients(*FUNCTIONS.values(), "api") as made:
        yield made


async def tenant_b(
    clients: dict[str, httpx.AsyncClient], b: TenantWorld, minio: Minio, settings: Settings
) -> dict[str, str]:
    """Tenant B with something of every kind: customers with snapshots, a staff member with a
    photo, a merge, a user, an API key."""
    ids = {"tenant_id": b.tenant_id, "site_id": b.site_a, "camera_id": b.camera_a}
    customers = []
    for i in range(3):
        key = f"{b.tenant_id}/{b.site_a}/{b.camera_a}/{T0.date()}/b-{i}.jpg"
        minio.put_object(settings.s3.raw_bucket, key, io.BytesIO(b"jpeg"), 4)
        event = track_event(b, person(), T0 + timedelta(minutes=10 * i), snapshot_key=key)
        response = await send(clients["ingest"], event, b.worker_a)
        assert response.status_code == 200, response.text
        customers.append(response.json()["customer_id"])
    ids["customer_id"], ids["other_customer_id"] = customers[0], customers[1]
    merged = await ok(
        await clients["merge"].post(
            f"/v1/persons/{b.tenant_id}/merge",
            headers=b.auth(b.admin),
            json={"kept_id": customers[1], "merged_id": customers[2]},
        )
    )
    ids["merge_id"] = merged["merge_id"]
    staff = await ok(
        await clients["enroll-staff"].post(
            f"/v1/staff/{b.tenant_id}", headers=b.auth(b.admin), json={"display_name": "B staff"}
        ),
        201,
    )
    ids["staff_id"] = staff["id"]
    photo = sorted((SHARED / "faces" / "lfw" / "Gerhard_Schroeder").glob("*.jpg"))[0].read_bytes()
    image = await ok(
        await clients["enroll-staff"].post(
            f"/v1/staff/{b.tenant_id}/{staff['id']}/images",
            headers=b.auth(b.admin),
            files={"image": ("front.jpg", photo, "image/jpeg")},
        ),
        201,
    )
    ids["image_id"] = image["id"]
    users = await ok(
        await clients["api"].get(f"/v1/tenants/{b.tenant_id}/users", headers=b.auth(b.admin))
    )
    ids["user_id"] = users["items"][0]["id"]
    keys = await ok(
        await clients["api"].get(f"/v1/tenants/{b.tenant_id}/api-keys", headers=b.auth(b.admin))
    )
    ids["key_id"] = keys["items"][0]["id"]
    return ids


def body_for(model: str | None, ids: dict[str, str]) -> dict[str, Any] | None:
    """A plausible body for each operation, naming B's ids wherever a body can name one."""
    now = datetime.now(UTC)
    bodies: dict[str, dict[str, Any]] = {
        "TenantCreate": {"slug": f"x-{uuid.uuid4().hex[:8]}", "name": "x"},
        "TenantUpdate": {"name": "taken over"},
        "SiteCreate": {"name": "x", "timezone": "UTC"},
        "SiteUpdate": {"name": "taken over"},
        "CameraCreate": {"name": "x"},
        "CameraUpdate": {"name": "taken over"},
        "UserCreate": {"email": f"x-{uuid.uuid4().hex[:8]}@example.com", "role": "site_manager",
                       "site_ids": [ids["site_id"]], "password": "correct-horse-battery-staple"},
        "UserUpdate": {"disabled": True},
        "ApiKeyCreate": {"name": "k", "role": "worker", "site_ids": [ids["site_id"]],
                         "camera_ids": [ids["camera_id"]]},
        "StaffCreate": {"display_name": "x", "site_id": ids["site_id"]},
        "StaffUpdate": {"display_name": "taken over"},
        "MergeRequest": {"kept_id": ids["customer_id"], "merged_id": ids["other_customer_id"]},
        "PairRequest": {"person_a": ids["customer_id"], "person_b": ids["other_customer_id"]},
        "ErasureRequest": {"customer_id": ids["customer_id"]},
        "RematerialiseRequest": {"start": (now - timedelta(days=30)).isoformat(),
                                 "end": now.isoformat(), "site_id": ids["site_id"]},
        "SnapshotRequest": {"track_id": "t1", "captured_at": now.isoformat()},
        "EmbeddingQuery": {"embedding": [1.0] + [0.0] * 127, "model_id": "sface-2021dec"},
    }  # fmt: skip
    return bodies.get(model) if model else None


async def dump_b(
    db: Database,
    minio: Minio,
    settings: Settings,
    gallery: MilvusGallery,
    b: TenantWorld,
    probe: Any,
) -> tuple[Any, ...]:
    """Every row B owns (as text), every object under B's prefix, B's nearest gallery entries."""
    rows: dict[str, list[str]] = {}
    async with db.transaction(DbScope(uuid.UUID(b.tenant_id))) as conn:
        tables = [r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id' "
            "AND table_schema = 'public'")]  # fmt: skip
        for table in sorted(tables):
            rows[table] = sorted(
                r["t"] for r in await conn.fetch(
                    f"SELECT t::text AS t FROM {table} t WHERE tenant_id = $1", uuid.UUID(b.tenant_id))
            )  # fmt: skip
        rows["tenants"] = [await conn.fetchval(
            "SELECT t::text FROM tenants t WHERE id = $1", uuid.UUID(b.tenant_id))]  # fmt: skip
    objects = sorted(
        (o.object_name, o.etag)
        for bucket in (settings.s3.raw_bucket, settings.s3.derived_bucket)
        for o in minio.list_objects(bucket, prefix="", recursive=True)
        if b.tenant_id in str(o.object_name)
    )
    hits = await gallery.search(uuid.UUID(b.tenant_id), probe, 50)
    nearest = sorted((str(h.person_id), round(float(h.similarity), 5)) for per in hits for h in per)
    return rows, objects, nearest


async def test_tenant_a_cannot_touch_tenant_b_through_any_operation(
    clients: dict[str, httpx.AsyncClient],
    db: Database,
    api_client: httpx.AsyncClient,
    stack_settings: Settings,
    endpoints: Endpoints,
    minio_client: Minio,
) -> None:
    minio = minio_client
    gallery = MilvusGallery(endpoints.milvus_uri, stack_settings.milvus, "sface-2021dec", 128)
    a = await make_world(db, api_client)
    b = await make_world(db, api_client)
    ids = await tenant_b(clients, b, minio, stack_settings)
    # B's statistics up to date first: the running dev gateway's minutely aggregate tick would
    # otherwise rebuild them during the sweep, a change no operation of A made
    async with db.transaction(DbScope(uuid.UUID(b.tenant_id))) as conn:
        await drain_dirty(conn)
    probe = np.stack([person() for _ in range(3)]).astype(np.float32)
    before = await dump_b(db, minio, stack_settings, gallery, b, probe)
    assert before[0]["customers"] and before[1] and before[2]

    refused: list[tuple[str, str, str, int]] = []
    own_tenant: list[tuple[str, str, str, int]] = []
    for route in all_routes():
        if route.public:
            continue
        params = _PARAM.findall(route.path)
        if "tenant_id" not in params:
            continue  # /v1/auth/me and the platform's tenant list: nothing of B's to name
        for who, token in (("admin", a.admin), ("manager", a.manager_a), ("worker", a.worker_a)):
            for target in ("b", "a-with-b-ids"):
                values = {**ids, "tenant_id": b.tenant_id if target == "b" else a.tenant_id}
                path = fill(route.path, values)
                model = route.body.__name__ if route.body else None
                client = clients[function_of(route.path)]
                query = {"start": str(T0.date()), "end": str(T0.date()), "site_id": ids["site_id"]}
                if route.path.endswith("/monitor") and target != "b":
                    continue  # A's own live stream never ends by itself
                if route.path.endswith("/monitor"):
                    async with client.stream("GET", path, headers=a.auth(token),
                                             params={"site_id": ids["site_id"]}) as response:  # fmt: skip
                        status = response.status_code
                elif route.path.endswith("/images") and route.method == "POST":
                    response = await client.post(path, headers=a.auth(token), files={
                        "image": ("x.jpg", b"\xff\xd8not-really", "image/jpeg")})  # fmt: skip
                    status = response.status_code
                else:
                    response = await client.request(
                        route.method, path, headers=a.auth(token), params=query,
                        json=body_for(model, ids) if route.method in ("POST", "PATCH") else None,
                    )  # fmt: skip
                    status = response.status_code
                assert status < 500, (who, route.method, path, status)
                record = (who, route.method, route.path, status)
                (refused if target == "b" else own_tenant).append(record)
    leaked = [r for r in refused if r[3] < 400]
    assert not leaked, leaked
    assert len(refused) > 100

    # CloudEvents: B's tenant, site, camera, source or snapshot key from A's worker
    ingest = clients["ingest"]
    b_source = f"/tenants/{b.tenant_id}/sites/{b.site_a}/cameras/{b.camera_a}"
    as_b = track_event(b, person(), T0)
    as_b["data"]["snapshot_key"] = None
    assert (await send(ingest, as_b, a.worker_a)).status_code == 403
    a_with_b_site = track_event(a, person(), T0)
    a_with_b_site["data"].update(site_id=b.site_a, camera_id=b.camera_a, snapshot_key=None)
    a_with_b_site["source"] = f"/tenants/{a.tenant_id}/sites/{b.site_a}/cameras/{b.camera_a}"
    assert (await send(ingest, a_with_b_site, a.worker_a)).status_code == 403
    a_with_b_source = track_event(a, person(), T0)
    a_with_b_source["source"] = b_source
    assert (await send(ingest, a_with_b_source, a.worker_a)).status_code == 422
    b_key = f"{b.tenant_id}/{b.site_a}/{b.camera_a}/{T0.date()}/b-0.jpg"
    a_with_b_key = track_event(a, person(), T0, snapshot_key=b_key)
    assert (await send(ingest, a_with_b_key, a.worker_a)).status_code == 422
    visit = {"specversion": "1.0", "type": "com.visitlens.visit.recorded.v1", "source": b_source,
             "id": str(uuid.uuid4()), "data": {"tenant_id": b.tenant_id}}  # fmt: skip
    for headers in ({}, a.auth(a.admin), a.auth(a.worker_a)):
        response = await clients["aggregate"].post(
            "/", headers={**headers, "content-type": "application/cloudevents+json"}, json=visit
        )
        assert response.status_code == 401, headers
    # the staff function's bucket events: a forged MinIO record for B's staff photo
    record_event = {"specversion": "1.0", "type": "io.minio.s3:ObjectRemoved:Delete",
                    "source": "minio:s3:::faces-derived", "id": str(uuid.uuid4()),
                    "subject": f"staff-faces/{b.tenant_id}/{ids['staff_id']}/front.jpg",
                    "data": {}}  # fmt: skip
    response = await clients["enroll-staff"].post(
        "/", headers={**a.auth(a.admin), "content-type": "application/cloudevents+json"},
        json=record_event,
    )  # fmt: skip
    assert response.status_code == 401

    after = await dump_b(db, minio, stack_settings, gallery, b, probe)
    assert after == before
