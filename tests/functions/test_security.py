"""What an outside probe broke, kept closed (issue 9): foreign object keys, events that corrupt the
numbers, tokens that outlive a deactivation, and server errors on bad input."""

from __future__ import annotations

import asyncio
import copy
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import from_http
from minio import Minio

from tests.conftest import PASSWORD, TenantWorld, function_clients, make_world, ok
from tests.functions.test_ingest import T0, counts, person, reply_of, send, track_event
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients("ingest", "erase", "api", "match", "enroll-staff") as made:
        yield made


def exists(minio: Minio, bucket: str, key: str) -> bool:
    return any(o.object_name == key for o in minio.list_objects(bucket, prefix=key))


# --- 1. object keys ----------------------------------------------------------------------------


async def test_a_tenant_cannot_point_at_or_delete_another_tenants_snapshot(
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    db: Database,
    api_client: httpx.AsyncClient,
    stack_settings: Settings,
    minio_client: Minio,
) -> None:
    minio = minio_client
    bucket = stack_settings.s3.raw_bucket
    victim = await make_world(db, api_client)
    theirs = f"{victim.tenant_id}/{victim.site_a}/{victim.camera_a}/2026-11-20/private.jpg"
    minio.put_object(bucket, theirs, io.BytesIO(b"jpeg"), 4)
    ingest = clients["ingest"]
    before = await counts(db, world.tenant_id)
    mine = f"{world.tenant_id}/{world.site_a}/{world.camera_a}"
    for key in (
        theirs,
        f"{mine}/../../../{theirs}",
        f"{world.tenant_id}/{world.site_b}/{world.camera_b}/2026-11-20/other-camera.jpg",
        f"{mine}/",
        f"/{mine}/x.jpg",
        f"{mine}/a b.jpg",
    ):
        event = track_event(world, person(), T0, snapshot_key=key)
        response = await send(ingest, event, world.worker_a)
        assert response.status_code == 422, key
        assert response.json()["errors"][0]["field"] == "data.snapshot_key"
    assert await counts(db, world.tenant_id) == before

    # A row that names a foreign key anyway (written before this check existed): erasing the
    # customer deletes only the tenant's own objects.
    own = f"{mine}/2026-11-20/{uuid.uuid4().hex}.jpg"
    minio.put_object(bucket, own, io.BytesIO(b"jpeg"), 4)
    reply = reply_of(await send(ingest, track_event(world, person(), T0, snapshot_key=own),
                                world.worker_a))  # fmt: skip
    customer = reply.data["customer_id"]
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        await conn.execute(
            "UPDATE person_embeddings SET snapshot_key = $2 WHERE customer_id = $1",
            uuid.UUID(customer), theirs,
        )  # fmt: skip
    erased = await ok(
        await clients["erase"].post(
            f"/v1/erasure/{world.tenant_id}",
            headers=world.auth(world.admin),
            json={"customer_id": customer},
        )
    )
    assert erased["receipt_id"]
    assert not exists(minio, bucket, own)
    assert exists(minio, bucket, theirs)  # the other tenant's object survives


# --- 5. events that corrupt the numbers --------------------------------------------------------


async def test_events_that_would_corrupt_the_numbers_are_refused(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld, db: Database
) -> None:
    ingest = clients["ingest"]
    before = await counts(db, world.tenant_id)
    now = datetime.now(UTC)

    def at(start: datetime, seconds: float = 8.0) -> dict[str, Any]:
        return track_event(world, person(), start, seconds)

    cases: list[tuple[dict[str, Any], str]] = []
    empty_id = at(T0)
    empty_id["id"] = ""
    cases.append((empty_id, "id"))
    blank_id = at(T0)
    blank_id["id"] = "   "
    cases.append((blank_id, "id"))
    cases.append((at(datetime(1971, 1, 1, tzinfo=UTC)), "data.first_seen"))
    cases.append((at(datetime(2999, 1, 1, tzinfo=UTC)), "data.last_seen"))
    cases.append((at(now + timedelta(hours=1)), "data.last_seen"))
    cases.append((at(now - timedelta(days=45)), "data.first_seen"))  # beyond the 30-day horizon
    cases.append((at(T0, seconds=300 * 86_400), "data.last_seen"))  # a 300-day pass
    naive = at(T0)
    naive["data"]["first_seen"] = naive["data"]["first_seen"].removesuffix("Z")
    cases.append((naive, "data.first_seen"))
    for event, field in cases:
        response = await send(ingest, event, world.worker_a)
        assert response.status_code in (400, 422), (field, response.text)
        fields = {e["field"] for e in response.json().get("errors", [])}
        assert field in fields, (field, response.text)
    assert await counts(db, world.tenant_id) == before

    # A late event inside the horizon (10 days) is counted.
    late = at(now - timedelta(days=10))
    assert (await send(ingest, late, world.worker_a)).status_code == 200

    # The same id again: the same data is a replay (the stored answer), other data a 409.
    first = at(T0 + timedelta(hours=3))
    counted = reply_of(await send(ingest, first, world.worker_a))
    replay = reply_of(await send(ingest, copy.deepcopy(first), world.worker_a))
    assert replay.data["visit_id"] == counted.data["visit_id"]
    different = at(T0 + timedelta(hours=5))
    different["id"] = first["id"]
    conflict = await send(ingest, different, world.worker_a)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["errors"][0]["field"] == "id"
    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 2


# --- 3. deactivation ends every token ------------------------------------------------------------


async def test_deactivating_a_tenant_or_disabling_a_user_ends_every_token(
    clients: dict[str, httpx.AsyncClient], db: Database, api_client: httpx.AsyncClient
) -> None:
    world = await make_world(db, api_client)
    api, ingest = clients["api"], clients["ingest"]
    t = f"/v1/tenants/{world.tenant_id}"
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct-horse-battery-staple"
    await ok(await api.post(f"{t}/users", headers=world.auth(world.admin),
                            json={"email": email, "role": "tenant_admin", "password": password}), 201)  # fmt: skip
    grant = await ok(await api.post("/v1/auth/token", json={"grant_type": "password",
                                                            "email": email, "password": password}))  # fmt: skip
    user_token, refresh = grant["access_token"], grant["refresh_token"]
    assert (await api.get(f"{t}/sites", headers=world.auth(user_token))).status_code == 200

    # An open live-monitor stream of that user …
    lines: list[str] = []

    async def watch() -> None:
        async with api.stream(
            "GET", f"{t}/monitor", headers=world.auth(user_token), timeout=30
        ) as stream:
            async for line in stream.aiter_lines():
                lines.append(line)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)

    # … the tenant is deactivated by a system admin.
    await ok(await api.patch(t, headers=world.auth(world.root), json={"active": False}))
    for token in (user_token, world.admin, world.manager_a):
        assert (await api.get(f"{t}/sites", headers=world.auth(token))).status_code == 401
    event = track_event(world, person(), T0)
    assert (await send(ingest, event, world.worker_a)).status_code == 401
    refreshed = await api.post(
        "/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": refresh}
    )
    assert refreshed.status_code == 401
    key_grant = await api.post(
        "/v1/auth/token", json={"grant_type": "api_key", "api_key": world.worker_key}
    )
    assert key_grant.status_code == 401
    await asyncio.wait_for(watcher, timeout=15)  # the stream ended by itself
    assert any(line.startswith("event: revoked") for line in lines)

    # Reactivated: a disabled user alone loses access, at once.
    await ok(await api.patch(t, headers=world.auth(world.root), json={"active": True}))
    assert (await api.get(f"{t}/sites", headers=world.auth(world.admin))).status_code == 200
    users = await ok(await api.get(f"{t}/users", headers=world.auth(world.admin)))
    user_id = next(u["id"] for u in users["items"] if u["email"] == email)
    fresh = await ok(await api.post("/v1/auth/token", json={"grant_type": "password",
                                                            "email": email, "password": password}))  # fmt: skip
    await ok(await api.patch(f"{t}/users/{user_id}", headers=world.auth(world.admin),
                             json={"disabled": True}))  # fmt: skip
    assert (
        await api.get(f"{t}/sites", headers=world.auth(fresh["access_token"]))
    ).status_code == 401
    again = await api.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]},
    )
    assert again.status_code == 401
    assert (await api.get(f"{t}/sites", headers=world.auth(world.admin))).status_code == 200


# --- 4. bad input is a 4xx naming the field ------------------------------------------------------


async def test_bad_input_is_a_4xx_naming_the_field(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld
) -> None:
    api = clients["api"]
    t = f"/v1/tenants/{world.tenant_id}"
    admin = world.auth(world.admin)
    nul = await api.post(f"{t}/sites", headers=admin, json={"name": "a\x00b", "timezone": "UTC"})
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "body.name"
    null = await api.patch(f"{t}/sites/{world.site_a}", headers=admin, json={"name": None})
    assert null.status_code == 422 and null.json()["errors"][0]["field"] == "body.name"
    nested = "[" * 100_000 + "]" * 100_000
    deep = await api.post(
        f"{t}/sites", headers={**admin, "content-type": "application/json"}, content=nested
    )
    assert deep.status_code == 400
    deep_event = await clients["ingest"].post(
        "/v1/events",
        headers={**world.auth(world.worker_a), "content-type": "application/cloudevents+json"},
        content=json.dumps({"specversion": "1.0", "id": "x", "source": "/x", "type": "t"})[:-1]
        + ', "data": ' + nested + "}",
    )  # fmt: skip
    assert deep_event.status_code in (400, 413)
    # a binary-mode CloudEvent is JSON data; the probe's text/plain one was taken
    ce = from_http({"content-type": "application/cloudevents+json"},
                   json.dumps(track_event(world, person(), T0)).encode())  # fmt: skip
    ce_headers, ce_body = to_binary(ce)
    for media_type in ("text/plain", "application/x-www-form-urlencoded", "image/png"):
        sent = await clients["ingest"].post("/v1/events", content=ce_body, headers={
            **dict(ce_headers), **world.auth(world.worker_a), "content-type": media_type})  # fmt: skip
        assert sent.status_code == 415, (media_type, sent.text)
    for params, field in (
        ({"start": "9999-12-31", "end": "9999-12-31"}, "query.start"),
        ({"start": "2026-11-01", "end": "9999-12-31"}, "query.end"),
    ):
        for report in ("reports/visits", "reports/heatmap", "visits"):
            response = await api.get(f"{t}/{report}", headers=admin, params=params)
            assert response.status_code == 422, (report, response.text)
            assert field in {e["field"] for e in response.json()["errors"]}, report
    tiny = cv2.imencode(".png", np.zeros((5, 5, 3), np.uint8))[1].tobytes()
    match = await clients["match"].post(
        f"/v1/match/{world.tenant_id}",
        headers=admin,
        files={"image": ("tiny.png", tiny, "image/png")},
    )
    assert match.status_code == 422 and match.json()["errors"][0]["field"] == "image"


# --- 6. memory stays flat under large uploads ----------------------------------------------------


async def test_a_huge_image_is_scaled_down_and_memory_stays_flat(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld
) -> None:
    """An 8000x5000 PNG (40 MP, ~40 KB compressed) used to grow a worker by 1.6-3.5 GB and keep
    it. Now it is detected on a copy of at most 2048 px: repeated uploads leave memory flat."""
    import psutil

    huge = np.full((5000, 8000, 3), 127, np.uint8)
    cv2.putText(huge, "visitlens", (500, 2500), cv2.FONT_HERSHEY_SIMPLEX, 40, (0, 0, 0), 60)
    png = cv2.imencode(".png", huge, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    del huge
    assert len(png) < 1_000_000
    me = psutil.Process()

    async def upload() -> None:
        response = await clients["match"].post(
            f"/v1/match/{world.tenant_id}",
            headers=world.auth(world.admin),
            files={"image": ("huge.png", png, "image/png")},
        )
        assert response.status_code == 422, response.text  # no face in it: a field problem
        assert response.json()["errors"][0]["field"] == "image"

    for _ in range(2):  # warm: models loaded, the detector's buffers sized for a 2048 px input
        await upload()
    baseline = me.memory_info().rss
    for _ in range(4):
        await upload()
    grown = me.memory_info().rss - baseline
    # Keeping anything of an upload would cost at least one decoded image per upload (115 MiB;
    # 1.6-3.5 GB before the fix). The allocator's own slack over four uploads stays well below
    # one image (measured 40-90 MiB, depending on what else the process has done).
    one_image = 8000 * 5000 * 3
    assert grown < one_image, f"grew by {grown / 2**20:.0f} MiB over four more uploads"
    staff = await clients["enroll-staff"].post(
        f"/v1/staff/{world.tenant_id}", headers=world.auth(world.admin), json={"display_name": "s"}
    )
    refused = await clients["enroll-staff"].post(
        f"/v1/staff/{world.tenant_id}/{staff.json()['id']}/images",
        headers=world.auth(world.admin),
        files={"image": ("huge.png", png, "image/png")},
    )
    assert refused.status_code == 422  # no face in it, said as a field problem
    assert (me.memory_info().rss - baseline) / 2**20 < 200


async def test_every_answer_carries_the_security_headers(world: TenantWorld) -> None:
    """The probe found the token grant cacheable and JSON without nosniff: every function's
    every answer (a grant, a refusal, a CloudEvent reply) now says nosniff, no-referrer and
    no-store unless it chose its own caching (the JWK Set), and HSTS when it came over TLS."""
    async with function_clients("api", "ingest") as clients:
        api = clients["api"]
        grant = await api.post("/v1/auth/token", json={
            "grant_type": "password", "email": world.admin_email, "password": PASSWORD})  # fmt: skip
        refused = await api.get("/v1/auth/me")
        keys = await api.get("/.well-known/jwks.json")
        event = await send(clients["ingest"], track_event(world, person(), T0), world.worker_a)
        tls = await api.get("/v1/auth/me", headers={"x-forwarded-proto": "https"})
    assert (grant.status_code, refused.status_code, event.status_code) == (200, 401, 200)
    for response in (grant, refused, keys, event, tls):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    for response in (grant, refused, event):
        assert response.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in response.headers
    assert keys.headers["cache-control"].startswith("public")
    assert tls.headers["strict-transport-security"].startswith("max-age=63072000")


async def test_a_browser_refresh_token_lives_only_in_an_httponly_cookie(
    world: TenantWorld,
) -> None:
    """The probe found the console's 30-day refresh token in sessionStorage, where any script of
    the page could read it. A browser's grant (``refresh_cookie``) sets it as an HttpOnly,
    SameSite=Strict cookie scoped to the token endpoint (Secure in production and over TLS) and
    leaves it out of the body;
    a refresh reads and rotates the cookie; sign-out revokes the session and clears it."""
    login = {"grant_type": "password", "email": world.admin_email, "password": PASSWORD,
             "refresh_cookie": True}  # fmt: skip
    async with function_clients("api") as clients:
        api = clients["api"]
        grant = await api.post("/v1/auth/token", json=login)
        assert grant.status_code == 200, grant.text
        assert grant.json()["refresh_token"] is None and grant.json()["access_token"]
        cookie = grant.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/v1/auth/token"):
            assert attribute.lower() in cookie.lower(), cookie
        assert "secure" not in cookie.lower()  # a test server on plain HTTP: Chromium needs that
        first = cookie.split(";")[0]  # visitlens_refresh=vlr_…
        api.cookies.clear()  # every cookie below is sent explicitly
        tls = await api.post("/v1/auth/token", json=login, headers={"x-forwarded-proto": "https"})
        assert "; secure" in tls.headers["set-cookie"].lower()  # behind a TLS ingress: Secure

        refresh = {"grant_type": "refresh_token", "refresh_cookie": True}
        renewed = await api.post("/v1/auth/token", json=refresh, headers={"cookie": first})
        assert renewed.status_code == 200 and renewed.json()["refresh_token"] is None
        second = renewed.headers["set-cookie"].split(";")[0]
        assert second != first  # rotated
        api.cookies.clear()
        missing = await api.post("/v1/auth/token", json=refresh)
        assert missing.status_code == 422
        assert missing.json()["errors"][0]["field"] == "body.refresh_token"

        api.cookies.clear()
        out = await api.delete("/v1/auth/token", headers={"cookie": second})
        assert out.status_code == 204
        assert (
            "max-age=0" in out.headers["set-cookie"].lower() or '=""' in out.headers["set-cookie"]
        )
        api.cookies.clear()
        ended = await api.post("/v1/auth/token", json=refresh, headers={"cookie": second})
        assert ended.status_code == 401  # the session is over
        # an API client that asks for none still gets its refresh token in the body
        plain = await api.post("/v1/auth/token", json={**login, "refresh_cookie": False})
        assert (
            plain.json()["refresh_token"].startswith("vlr_") and "set-cookie" not in plain.headers
        )
