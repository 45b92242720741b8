"""The `enroll-staff` function through functions-framework: multipart uploads, MinIO bucket
notifications (MinIO's own record JSON as the gateway forwards it), the recognition test, the edge
gallery with its version, roles and bad photos. Photos: ../shared/faces (research data, tests only)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from minio import Minio

from tests.conftest import SHARED, TenantWorld, delivery, load_function, ok
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.minio_bridge import minio_event
from visitlens.config import Settings, load_settings
from visitlens.identity.decisions import Thresholds
from visitlens_dev.stack import s3 as s3_stack

pytestmark = pytest.mark.integration
LFW = SHARED / "faces" / "lfw"
GROUP = SHARED / "faces" / "group" / "dlib_2008_001009.jpg"


def photo(name: str) -> bytes:
    """The n-th photo (1-based, in name order) of an identity: ``Tony_Blair_0002.jpg``."""
    identity, number = name.removesuffix(".jpg").rsplit("_", 1)
    return sorted((LFW / identity).glob("*.jpg"))[int(number) - 1].read_bytes()


@pytest.fixture(scope="module")
async def staff_client(
    function_environment: None, shared_faces: Path
) -> AsyncIterator[httpx.AsyncClient]:
    app = load_function("enroll-staff")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://staff.test", timeout=60
    ) as client:
        yield client


@pytest.fixture(scope="module")
def s3(stack_settings: Settings, endpoints: Endpoints) -> Minio:
    return s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)


async def new_staff(
    client: httpx.AsyncClient, world: TenantWorld, token: str, site: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"display_name": "Dana"}
    if site is not None:
        body["site_id"] = site
    response = await client.post(
        f"/v1/staff/{world.tenant_id}", headers=world.auth(token), json=body
    )
    result: dict[str, Any] = await ok(response, 201)
    return result


async def upload(
    client: httpx.AsyncClient, world: TenantWorld, staff_id: str, data: bytes, token: str
) -> httpx.Response:
    return await client.post(
        f"/v1/staff/{world.tenant_id}/{staff_id}/images",
        headers=world.auth(token),
        files={"image": ("face.jpg", data, "image/jpeg")},
    )


async def gallery(
    client: httpx.AsyncClient, world: TenantWorld, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.get(
        f"/v1/staff/{world.tenant_id}/gallery",
        params={"site_id": world.site_a},
        headers={**world.auth(world.worker_a), **(headers or {})},
    )


async def test_enrol_photos_gallery_versions_and_delete(
    staff_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    staff = await new_staff(staff_client, world, world.manager_a, world.site_a)
    first = await ok(
        await upload(
            staff_client, world, staff["id"], photo("Tony_Blair_0001.jpg"), world.manager_a
        ),
        201,
    )
    second = await ok(await upload(staff_client, world, staff["id"], photo("Tony_Blair_0002.jpg"), world.manager_a), 201)  # fmt: skip
    assert first["is_primary"] and not second["is_primary"]
    assert len(first["landmarks"]) == 5 and first["quality"] > 0.5
    # the console's gallery shows the photo itself, to the member's site manager
    content = f"/v1/staff/{world.tenant_id}/{staff['id']}/images/{first['id']}/content"
    shown = await staff_client.get(content, headers=world.auth(world.manager_a))
    assert shown.status_code == 200 and shown.content == photo("Tony_Blair_0001.jpg")
    assert shown.headers["content-type"] == "image/jpeg"
    assert "private" in shown.headers["cache-control"]
    not_hers = content.replace(first["id"], str(uuid.uuid4()))
    assert (await staff_client.get(not_hers, headers=world.auth(world.admin))).status_code == 404

    response = await gallery(staff_client, world)
    body = await ok(response)
    assert body["model_id"] == "sface-2021dec" and body["dim"] == 128
    assert {e["view_id"] for e in body["entries"]} == {
        first["embedding_id"],
        second["embedding_id"],
    }
    assert all(len(e["embedding"]) == 128 for e in body["entries"])
    etag = response.headers["etag"]
    unchanged = await gallery(staff_client, world, {"if-none-match": etag})
    assert unchanged.status_code == 304

    # the recognition test finds her from a third photo, and not from a stranger
    probe = await staff_client.post(
        f"/v1/staff/{world.tenant_id}/test-recognition",
        headers=world.auth(world.admin),
        files={"image": ("p.jpg", photo("Tony_Blair_0003.jpg"), "image/jpeg")},
    )
    recognised = await ok(probe)
    scores = recognised["scores"]
    assert scores[0]["staff_id"] == staff["id"] and scores[0]["match"]
    # one staff threshold: the edge's (served with the gallery), the screen's and ingest's
    expected = Thresholds.for_gallery(0, 2, load_settings().identity).staff
    assert body["staff_match_threshold"] == recognised["threshold"] == expected
    stranger = await staff_client.post(
        f"/v1/staff/{world.tenant_id}/test-recognition",
        headers=world.auth(world.admin),
        files={"image": ("p.jpg", photo("Hans_Blix_0001.jpg"), "image/jpeg")},
    )
    assert not any(s["match"] for s in (await ok(stranger))["scores"])

    # deleting the primary photo promotes the other, removes the vector, bumps the version
    deleted = await staff_client.delete(
        f"/v1/staff/{world.tenant_id}/{staff['id']}/images/{first['id']}",
        headers=world.auth(world.manager_a),
    )
    assert deleted.status_code == 204, deleted.text
    changed = await gallery(staff_client, world, {"if-none-match": etag})
    after = await ok(changed)
    assert [e["view_id"] for e in after["entries"]] == [second["embedding_id"]]
    assert after["version"] > body["version"]
    images = await ok(
        await staff_client.get(
            f"/v1/staff/{world.tenant_id}/{staff['id']}/images", headers=world.auth(world.admin)
        )
    )
    assert [i["id"] for i in images["items"]] == [second["id"]] and images["items"][0]["is_primary"]
    assert (await staff_client.get(content, headers=world.auth(world.admin))).status_code == 404

    # a deactivated member leaves the gallery
    await ok(
        await staff_client.patch(
            f"/v1/staff/{world.tenant_id}/{staff['id']}",
            headers=world.auth(world.admin),
            json={"active": False},
        )
    )
    assert (await ok(await gallery(staff_client, world)))["entries"] == []


async def test_bad_photos_are_rejected_with_their_reason_and_nothing_stored(
    staff_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    staff = await new_staff(staff_client, world, world.admin, None)
    cases = {
        "faces found": GROUP.read_bytes(),
        "not a decodable image": b"GIF89a not really",
        "empty image": b"",
    }
    for reason, data in cases.items():
        response = await upload(staff_client, world, staff["id"], data, world.admin)
        assert response.status_code in (400, 422), response.text
        assert reason in response.text, response.text
    blank = io.BytesIO()
    import cv2
    import numpy as np

    ok_, encoded = cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))
    assert ok_
    blank.write(encoded.tobytes())
    response = await upload(staff_client, world, staff["id"], blank.getvalue(), world.admin)
    assert response.status_code == 422 and "no face found" in response.text
    wrong_type = await staff_client.post(
        f"/v1/staff/{world.tenant_id}/{staff['id']}/images",
        headers=world.auth(world.admin),
        json={"image": "x"},
    )
    assert wrong_type.status_code == 415
    images = await ok(
        await staff_client.get(
            f"/v1/staff/{world.tenant_id}/{staff['id']}/images", headers=world.auth(world.admin)
        )
    )
    assert images["items"] == []


async def test_roles(staff_client: httpx.AsyncClient, world: TenantWorld) -> None:
    t = f"/v1/staff/{world.tenant_id}"
    anonymous = await staff_client.get(t)
    assert anonymous.status_code == 401
    worker = await staff_client.post(
        t, headers=world.auth(world.worker_a), json={"display_name": "x"}
    )
    assert worker.status_code == 403
    # a manager of site A may not create tenant-wide staff, nor staff of site B
    for site in (None, world.site_b):
        body = {"display_name": "x", **({"site_id": site} if site else {})}
        assert (
            await staff_client.post(t, headers=world.auth(world.manager_a), json=body)
        ).status_code == 403
    # a worker reads only its own site's gallery
    other = await staff_client.get(
        f"{t}/gallery", params={"site_id": world.site_b}, headers=world.auth(world.worker_a)
    )
    assert other.status_code == 403
    foreign = await staff_client.get(
        f"/v1/staff/{uuid.uuid4()}/gallery",
        params={"site_id": world.site_a},
        headers=world.auth(world.worker_a),
    )
    assert foreign.status_code == 403


def _record(bucket: str, key: str, name: str, size: int) -> dict[str, Any]:
    """A record exactly as MinIO's webhook target sends it (keys URL-encoded)."""
    from urllib.parse import quote_plus

    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2026-11-21T10:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "minio"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key),
                "size": size,
                "eTag": uuid.uuid4().hex,
                "contentType": "image/jpeg",
                "sequencer": uuid.uuid4().hex[:16].upper(),
            },
        },
    }


async def deliver(
    client: httpx.AsyncClient, record: dict[str, Any], issuer: EventTokenIssuer | None
) -> httpx.Response:
    """A MinIO record as the bridge and a Trigger deliver it (with the delivery token)."""
    from urllib.parse import unquote_plus

    key = unquote_plus(record["s3"]["object"]["key"])
    event = minio_event(record, record["eventName"], record["s3"]["bucket"]["name"], key)
    headers, body = to_binary(event)
    signed = delivery(issuer, "enroll-staff", headers) if issuer else dict(headers)
    return await client.post("/", headers=signed, content=body)


async def test_bucket_notifications_enrol_and_forget(
    event_issuer: EventTokenIssuer,
    staff_client: httpx.AsyncClient,
    world: TenantWorld,
    s3: Minio,
    stack_settings: Settings,
) -> None:
    staff = await new_staff(staff_client, world, world.admin, world.site_a)
    bucket = stack_settings.s3.derived_bucket
    key = f"staff-faces/{world.tenant_id}/{staff['id']}/front photo.jpg"
    data = photo("Gerhard_Schroeder_0001.jpg")
    s3.put_object(bucket, key, io.BytesIO(data), len(data), content_type="image/jpeg")
    created = _record(bucket, key, "s3:ObjectCreated:Put", len(data))
    assert (await deliver(staff_client, created, None)).status_code == 401  # no delivery token
    first = await deliver(staff_client, created, event_issuer)
    assert first.status_code == 201, first.text
    again = await deliver(
        staff_client, created, event_issuer
    )  # redelivery: the same image, not a second one
    assert again.status_code == 201 and again.json() == first.json()
    images = await ok(
        await staff_client.get(
            f"/v1/staff/{world.tenant_id}/{staff['id']}/images", headers=world.auth(world.admin)
        )
    )
    assert [i["object_key"] for i in images["items"]] == [key]

    bad_key = _record(
        bucket, f"staff-faces/{world.tenant_id}/not-a-uuid/x.jpg", "s3:ObjectCreated:Put", 10
    )
    rejected = await deliver(staff_client, bad_key, event_issuer)
    assert rejected.status_code == 422 and "staff-faces/{tenant_id}" in rejected.text
    missing = _record(
        bucket, f"staff-faces/{world.tenant_id}/{staff['id']}/gone.jpg", "s3:ObjectCreated:Put", 10
    )
    assert (await deliver(staff_client, missing, event_issuer)).status_code == 404

    s3.remove_object(bucket, key)
    removed = await deliver(
        staff_client, _record(bucket, key, "s3:ObjectRemoved:Delete", 0), event_issuer
    )
    assert removed.status_code == 204
    assert (await ok(await gallery(staff_client, world)))["entries"] == []
