"""Presigned snapshot uploads: the edge writes one JPEG below its own camera's prefix in faces-raw,
through a URL the API signs; other cameras and bad requests are refused."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TenantWorld, ok
from visitlens.adapters.endpoints import Endpoints
from visitlens.config import Settings
from visitlens_dev.stack import s3 as s3_stack

pytestmark = pytest.mark.integration


async def test_worker_uploads_a_snapshot_through_a_presigned_url(
    api_client: httpx.AsyncClient,
    world: TenantWorld,
    stack_settings: Settings,
    endpoints: Endpoints,
) -> None:
    path = f"/v1/tenants/{world.tenant_id}/sites/{world.site_a}/cameras/{world.camera_a}/snapshots"
    body = {"track_id": "cam1:0007", "captured_at": "2026-11-20T09:15:03.2Z"}
    grant = await ok(
        await api_client.post(path, headers=world.auth(world.worker_a), json=body), 201
    )
    assert grant["key"] == (
        f"{world.tenant_id}/{world.site_a}/{world.camera_a}/2026-11-20/cam1-0007.jpg"
    )
    jpeg = b"\xff\xd8\xff\xe0" + b"0" * 1000 + b"\xff\xd9"
    async with httpx.AsyncClient() as raw:
        put = await raw.put(grant["url"], content=jpeg, headers={"content-type": "image/jpeg"})
    assert put.status_code == 200, put.text
    minio = s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)
    stored = minio.get_object(stack_settings.s3.raw_bucket, grant["key"])
    try:
        assert stored.read() == jpeg
    finally:
        stored.close()
        stored.release_conn()

    # the URL is for that key only: another key with the same signature is refused
    other = grant["url"].replace("cam1-0007.jpg", "cam1-0008.jpg")
    async with httpx.AsyncClient() as raw:
        assert (await raw.put(other, content=jpeg)).status_code == 403

    other_camera = path.replace(world.camera_a, world.camera_b).replace(world.site_a, world.site_b)
    denied = await api_client.post(other_camera, headers=world.auth(world.worker_a), json=body)
    assert denied.status_code == 403
    bad = await api_client.post(
        path, headers=world.auth(world.worker_a), json={"track_id": "../x", "captured_at": "now"}
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"body.track_id", "body.captured_at"}
    future = await api_client.post(
        path,
        headers=world.auth(world.worker_a),
        json={"track_id": "t1", "captured_at": "2099-01-01T00:00:00Z"},
    )
    assert future.status_code == 422
    assert (await api_client.post(path, json=body)).status_code == 401
