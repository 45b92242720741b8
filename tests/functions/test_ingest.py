"""The `ingest` function through functions-framework, fed golden events (events/examples) with
generated embeddings: counting, idempotency (also concurrent), the visit window, the "two faces at
once" rule, server-side staff matching, and every class of bad event (4xx, nothing stored)."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http

from tests.conftest import REPO, TenantWorld, delivery, load_function
from visitlens.adapters.endpoints import Endpoints
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.gallery import MilvusGallery
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.contracts import parse_data
from visitlens.ports import DbScope, GalleryRow, PersonKind

pytestmark = pytest.mark.integration

V2 = json.loads((REPO / "events" / "examples" / "face.detected.v2.json").read_text())
V1 = json.loads((REPO / "events" / "examples" / "face.detected.v1.json").read_text())
rng = np.random.default_rng(2026)
# Recent (events older than the tenant's replay horizon are refused), on a whole hour.
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def person() -> np.ndarray:
    return unit(rng.normal(size=128))


def view_of(identity: np.ndarray, cos: float = 0.8) -> np.ndarray:
    noise = rng.normal(size=128)
    noise -= noise.dot(identity) * identity
    return unit(cos * identity + np.sqrt(1 - cos**2) * unit(noise))


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def track_event(
    world: TenantWorld,
    identity: np.ndarray,
    start: datetime,
    seconds: float = 8.0,
    track: str | None = None,
    camera: str | None = None,
    **override: Any,
) -> dict[str, Any]:
    """A face.detected.v2 event (the golden example) for ``world`` showing ``identity``."""
    event: dict[str, Any] = copy.deepcopy(V2)
    data = event["data"]
    camera = camera or world.camera_a
    data.update(tenant_id=world.tenant_id, site_id=world.site_a, camera_id=camera,
                track_id=track or f"cam:{uuid.uuid4().hex[:8]}", first_seen=iso(start),
                last_seen=iso(start + timedelta(seconds=seconds)))  # fmt: skip
    for i, shot in enumerate(data["shots"]):
        shot["ts"] = iso(start + timedelta(seconds=seconds * (i + 1) / (len(data["shots"]) + 1)))
        shot["embedding"] = [round(float(x), 7) for x in view_of(identity, 0.85)]
    event["source"] = f"/tenants/{world.tenant_id}/sites/{world.site_a}/cameras/{camera}"
    event["id"] = f"trk-{uuid.uuid4()}"
    data["snapshot_key"] = (  # where the edge's presigned upload puts it: below its own camera
        f"{world.tenant_id}/{world.site_a}/{camera}/{start.date().isoformat()}/"
        f"{data['track_id'].replace(':', '-')}.jpg"
    )
    data.update(override)
    return event


@pytest.fixture(scope="module")
async def ingest_client(function_environment: None) -> AsyncIterator[httpx.AsyncClient]:
    app = load_function("ingest")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
        yield client


async def send(
    client: httpx.AsyncClient,
    event: dict[str, Any],
    token: str | None,
    mode: str = "binary",
    broker: EventTokenIssuer | None = None,
) -> httpx.Response:
    """As the edge sends (``/v1/events``, its token), or as a Broker delivers (``/``, the
    issuer's delivery token, the worker's token in the ``authtoken`` extension)."""
    ce = from_http({"content-type": "application/cloudevents+json"}, json.dumps(event).encode())
    headers, body = to_binary(ce) if mode == "binary" else to_structured(ce)
    headers = dict(headers)
    if token:
        headers["authorization"] = f"Bearer {token}"
    if broker is not None:
        return await client.post("/", headers=delivery(broker, "ingest", headers), content=body)
    return await client.post("/v1/events", headers=headers, content=body)


def reply_of(response: httpx.Response) -> CloudEvent:
    assert response.status_code == 200, response.text
    event = from_http(dict(response.headers), response.content)
    assert event["type"] == "com.visitlens.visit.recorded.v1"
    return event


async def counts(db: Database, tenant_id: str) -> dict[str, int]:
    async with db.transaction(DbScope(uuid.UUID(tenant_id))) as conn:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")
            for t in ("sightings", "customers", "visits", "person_embeddings")
        }


async def test_new_then_extended_then_repeat_visit(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    alice = person()
    first = reply_of(await send(ingest_client, track_event(world, alice, T0), world.worker_a))
    assert first.data["is_new_customer"] and first.data["opened_visit"]
    assert first.data["visit_count"] == 1 and first.data["similarity"] is None

    # Seen again ten minutes later (window 30 min): the same visit, longer dwell.
    again = reply_of(
        await send(
            ingest_client, track_event(world, alice, T0 + timedelta(minutes=10)), world.worker_a
        )
    )
    assert again.data["customer_id"] == first.data["customer_id"]
    assert again.data["visit_id"] == first.data["visit_id"] and not again.data["opened_visit"]
    assert again.data["dwell_s"] == pytest.approx(608.0)
    assert again.data["similarity"] >= 0.415

    # Two hours later: a repeat visit by a returning customer.
    later = reply_of(
        await send(
            ingest_client, track_event(world, alice, T0 + timedelta(hours=2)), world.worker_a
        )
    )
    assert later.data["customer_id"] == first.data["customer_id"]
    assert later.data["visit_id"] != first.data["visit_id"]
    assert later.data["opened_visit"] and not later.data["is_new_customer"]
    assert later.data["visit_count"] == 2

    bob = reply_of(
        await send(
            ingest_client, track_event(world, person(), T0 + timedelta(minutes=1)), world.worker_a
        )
    )
    assert bob.data["is_new_customer"] and bob.data["customer_id"] != first.data["customer_id"]

    totals = await counts(db, world.tenant_id)
    assert totals["customers"] == 2 and totals["visits"] == 3 and totals["sightings"] == 4
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        is_new = [r["is_new"] for r in await conn.fetch(
            "SELECT is_new FROM visits WHERE customer_id = $1 ORDER BY started_at",
            uuid.UUID(first.data["customer_id"]))]  # fmt: skip
    assert is_new == [True, False]


async def test_replays_never_count_twice_even_concurrently(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    event = track_event(world, person(), T0)
    first = reply_of(await send(ingest_client, event, world.worker_a))
    before = await counts(db, world.tenant_id)
    again = reply_of(await send(ingest_client, event, world.worker_a, mode="structured"))
    assert again["id"] == first["id"] and again.data == first.data
    assert await counts(db, world.tenant_id) == before

    fresh = track_event(world, person(), T0 + timedelta(hours=1))
    replies = await asyncio.gather(*(send(ingest_client, fresh, world.worker_a) for _ in range(8)))
    ids = {reply_of(r).data["visit_id"] for r in replies}
    assert len(ids) == 1
    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 1
    assert after["visits"] == before["visits"] + 1 and after["customers"] == before["customers"] + 1


async def test_two_faces_at_once_are_two_people(
    ingest_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    twin = person()
    first = reply_of(
        await send(ingest_client, track_event(world, twin, T0, track="cam:1"), world.worker_a)
    )
    # Another track at the same camera at the same time that looks like the first person.
    second = reply_of(
        await send(
            ingest_client,
            track_event(world, twin, T0 + timedelta(seconds=2), track="cam:2"),
            world.worker_a,
        )
    )
    assert second.data["customer_id"] != first.data["customer_id"]
    assert second.data["is_new_customer"]


async def test_staff_are_matched_server_side_and_not_counted(
    ingest_client: httpx.AsyncClient,
    db: Database,
    world: TenantWorld,
    stack_settings: Settings,
    endpoints: Endpoints,
) -> None:
    anna = person()
    tenant = uuid.UUID(world.tenant_id)
    async with db.transaction(DbScope(tenant)) as conn:
        staff_id = await conn.fetchval(
            "INSERT INTO staff (tenant_id, display_name) VALUES ($1, 'Anna') RETURNING id", tenant
        )
        view_id = await conn.fetchval(  # as enrollment keeps it: the database says whose it is
            "INSERT INTO person_embeddings (tenant_id, person_kind, staff_id, model_id, dim, "
            "quality, source, embedding) VALUES ($1, 'staff', $2, 'sface-2021dec', 128, 0.9, "
            "'enrollment', $3) RETURNING id",
            tenant, staff_id, anna.astype("<f4").tobytes(),
        )  # fmt: skip
    gallery = MilvusGallery(endpoints.milvus_uri, stack_settings.milvus, "sface-2021dec", 128)
    await gallery.insert([GalleryRow(view_id, tenant, staff_id, PersonKind.STAFF, anna)])
    await gallery.close()
    before = await counts(db, world.tenant_id)
    response = await send(ingest_client, track_event(world, anna, T0), world.worker_a)
    assert response.status_code == 200
    # a CloudEvent reply like every other 200: which member, how close (audit a misattribution)
    answer = from_http(dict(response.headers), response.content)
    assert answer["type"] == "com.visitlens.staff.recognized.v1"
    assert answer.data["staff_id"] == str(staff_id) and answer.data["similarity"] >= 0.358
    parse_data(answer["type"], answer.data)  # as its schema's model says
    after = await counts(db, world.tenant_id)
    assert after["customers"] == before["customers"] and after["visits"] == before["visits"]
    async with db.transaction(DbScope(tenant)) as conn:
        row = await conn.fetchrow(
            "SELECT decision, staff_id FROM sightings ORDER BY received_at DESC LIMIT 1"
        )
    assert row is not None and row["decision"] == "staff" and row["staff_id"] == staff_id

    # Deactivated, Anna is a passer-by like any other: her kept view no longer makes her staff.
    async with db.transaction(DbScope(tenant)) as conn:
        await conn.execute("UPDATE staff SET active = false WHERE id = $1", staff_id)
    later = reply_of(await send(ingest_client, track_event(world, anna, T0 + timedelta(hours=2)),
                                world.worker_a))  # fmt: skip
    assert later.data["is_new_customer"] and later.data.get("staff_id") is None


async def test_v1_events_and_the_token_extension(
    ingest_client: httpx.AsyncClient, world: TenantWorld, event_issuer: EventTokenIssuer
) -> None:
    event = copy.deepcopy(V1)
    event["data"].update(tenant_id=world.tenant_id, site_id=world.site_a, camera_id=world.camera_a,
                         ts=iso(T0), embedding=[round(float(x), 7) for x in person()],
                         snapshot_url=f"{world.tenant_id}/{world.site_a}/{world.camera_a}/d/v1.jpg")  # fmt: skip
    event["source"] = f"/tenants/{world.tenant_id}/sites/{world.site_a}/cameras/{world.camera_a}"
    event["id"] = f"v1-{uuid.uuid4()}"
    event["authtoken"] = world.worker_a  # as it travels through a broker
    # Through the Broker's path without the Broker's delivery token: refused before anything.
    assert (await send(ingest_client, event, token=None)).status_code == 401
    ce = from_http({"content-type": "application/cloudevents+json"}, json.dumps(event).encode())
    headers, body = to_binary(ce)
    assert (await ingest_client.post("/", headers=dict(headers), content=body)).status_code == 401
    recorded = reply_of(await send(ingest_client, event, token=None, broker=event_issuer))
    assert recorded.data["is_new_customer"]
    staff_flagged = copy.deepcopy(event)
    staff_flagged["id"] = f"v1-{uuid.uuid4()}"
    staff_flagged["data"]["is_staff_local"] = True
    flagged = await send(ingest_client, staff_flagged, None, broker=event_issuer)
    flagged_reply = from_http(dict(flagged.headers), flagged.content)
    assert flagged.status_code == 200
    assert flagged_reply["type"] == "com.visitlens.staff.recognized.v1"
    assert flagged_reply.data["staff_id"] is None  # the edge decided: the server was not asked


async def test_bad_events_are_4xx_and_store_nothing(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    before = await counts(db, world.tenant_id)
    good = track_event(world, person(), T0)
    other_camera = track_event(world, person(), T0, camera=world.camera_b)
    other_camera["source"] = (
        f"/tenants/{world.tenant_id}/sites/{world.site_a}/cameras/{world.camera_b}"
    )
    wrong_model = track_event(world, person(), T0, model_id="arcface-r100")
    wide = track_event(world, person(), T0)
    wide["data"]["dim"] = 512
    for shot in wide["data"]["shots"]:
        shot["embedding"] = [round(float(x), 7) for x in unit(rng.normal(size=512))]
    wrong_source = copy.deepcopy(good)
    wrong_source["source"] = "/somewhere/else"
    unknown_field = copy.deepcopy(good)
    unknown_field["data"]["mood"] = "happy"
    bad_norm = copy.deepcopy(good)
    bad_norm["data"]["shots"][0]["embedding"] = [0.5] * 128
    other_tenant = copy.deepcopy(good)
    other_tenant["data"]["tenant_id"] = str(uuid.uuid4())
    other_tenant["source"] = (
        f"/tenants/{other_tenant['data']['tenant_id']}/sites/{world.site_a}/cameras/{world.camera_a}"
    )
    cases: list[tuple[str, dict[str, Any], str | None, int, str | None]] = [
        ("no token", good, None, 401, None),
        ("garbage token", good, "xxx", 401, None),
        ("admin of another tenant", other_tenant, world.admin, 403, None),
        ("camera outside the key", other_camera, world.worker_a, 403, None),
        ("wrong model", wrong_model, world.worker_a, 422, "data.model_id"),
        ("other dimension", wide, world.worker_a, 422, "data.model_id"),
        ("wrong source", wrong_source, world.worker_a, 422, "source"),
        ("unknown field", unknown_field, world.worker_a, 422, "data.mood"),
        ("not normalised", bad_norm, world.worker_a, 422, "data"),
    ]
    for label, event, token, status, field in cases:
        response = await send(ingest_client, event, token)
        assert response.status_code == status, (label, response.text)
        if field:
            fields = {e["field"] for e in response.json().get("errors", [])}
            assert any(f.startswith(field) for f in fields), (label, fields)
    for headers, body in (
        ({"content-type": "application/cloudevents+json"}, b"{"),
        ({"content-type": "application/json"}, b'{"no": "attributes"}'),
        ({"content-type": "application/cloudevents+json"}, b"x" * 300_000),
    ):
        response = await ingest_client.post(
            "/v1/events",
            headers={**headers, "authorization": f"Bearer {world.worker_a}"},
            content=body,
        )
        assert response.status_code in (400, 413), response.text
    assert await counts(db, world.tenant_id) == before


async def test_a_poor_first_sighting_is_recognised_at_the_next_visit(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    """A customer created from shots below min_view_quality keeps their best one (ADR 0011):
    their next visit links to them instead of creating a second person."""
    carol = person()
    poor = track_event(world, carol, T0)
    for shot in poor["data"]["shots"]:
        shot["quality"] = 0.2
    first = reply_of(await send(ingest_client, poor, world.worker_a))
    assert first.data["is_new_customer"]
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        views = await conn.fetchval(
            "SELECT count(*) FROM person_embeddings WHERE customer_id = $1",
            uuid.UUID(first.data["customer_id"]),
        )
    assert views == 1
    later = reply_of(
        await send(
            ingest_client, track_event(world, carol, T0 + timedelta(hours=3)), world.worker_a
        )
    )
    assert later.data["customer_id"] == first.data["customer_id"]
    assert not later.data["is_new_customer"]


async def test_returning_reaches_only_as_far_back_as_the_gallery_scope(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    """A pass links only to a customer seen within the tenant's ``returning_within_days``
    (default 180): older customers are kept but start again as new (issue 30, gallery scope);
    widening the scope finds them again."""
    dora = person()
    first = reply_of(await send(ingest_client, track_event(world, dora, T0), world.worker_a))
    dora_id = uuid.UUID(first.data["customer_id"])
    tenant = DbScope(uuid.UUID(world.tenant_id))
    async with db.transaction(tenant) as conn:  # Dora was last here 200 days ago
        await conn.execute(
            "UPDATE customers SET first_seen_at = first_seen_at - interval '200 days', "
            "last_seen_at = last_seen_at - interval '200 days' WHERE id = $1",
            dora_id,
        )
        assert await conn.fetchval("SELECT returning_within_days FROM tenants") == 180
    outside = reply_of(
        await send(ingest_client, track_event(world, dora, T0 + timedelta(hours=3)), world.worker_a)
    )
    assert outside.data["is_new_customer"]
    assert outside.data["customer_id"] != str(dora_id)
    async with db.transaction(tenant) as conn:  # kept: retention decides deletion, not scope
        assert await conn.fetchval("SELECT count(*) FROM customers WHERE id = $1", dora_id) == 1
        await conn.execute("UPDATE tenants SET returning_within_days = 365")
    inside = reply_of(
        await send(ingest_client, track_event(world, dora, T0 + timedelta(hours=6)), world.worker_a)
    )
    assert not inside.data["is_new_customer"]
    assert inside.data["customer_id"] in {str(dora_id), outside.data["customer_id"]}
