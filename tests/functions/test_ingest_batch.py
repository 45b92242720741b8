"""Batched delivery: an edge's backlog as one ``application/cloudevents-batch+json`` request. One
result per event in order; a bad event is refused with its reason while the rest count; a person
passing twice within one batch is one person; a replayed batch counts nothing twice."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import TenantWorld
from tests.functions.test_ingest import (
    T0,
    counts,
    ingest_client,
    person,
    reply_of,
    send,
    track_event,
)
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

__all__ = ["ingest_client"]  # the module-scoped fixture, shared
pytestmark = pytest.mark.integration
BATCH = "application/cloudevents-batch+json"


def structured(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "specversion": "1.0", "datacontenttype": "application/json"}


async def send_batch(
    client: httpx.AsyncClient, events: list[Any], token: str | None
) -> httpx.Response:
    headers = {"content-type": BATCH}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.post("/v1/events", headers=headers, content=json.dumps(events))


async def test_a_batch_counts_each_event_once_and_refuses_only_the_bad_one(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    alice, bob = person(), person()
    events = [
        track_event(world, alice, T0, track="cam:a1"),
        track_event(world, bob, T0 + timedelta(minutes=1), track="cam:b1"),
        # alice again within the visit window, in the same batch: the gallery search ran
        # before her first pass was written, the batch itself must link them
        track_event(world, alice, T0 + timedelta(minutes=5), track="cam:a2"),
        # alice three hours later: a repeat visit by the same customer
        track_event(world, alice, T0 + timedelta(hours=3), track="cam:a3"),
    ]
    bad = track_event(world, person(), T0 + timedelta(minutes=2))
    bad["source"] = f"/tenants/{world.tenant_id}/sites/{world.site_a}/cameras/{uuid.uuid4()}"
    batch = [structured(e) for e in events[:2]] + [structured(bad), "not an event"]
    batch += [structured(e) for e in events[2:]]
    before = await counts(db, world.tenant_id)

    response = await send_batch(ingest_client, batch, world.worker_a)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 200, 422, 400, 200, 200]
    assert results[2]["id"] == bad["id"]
    assert results[2]["problem"]["errors"][0]["field"] == "source"
    a1, b1, a2, a3 = (results[i] for i in (0, 1, 4, 5))
    assert a1["is_new_customer"] and b1["is_new_customer"]
    assert a1["customer_id"] != b1["customer_id"]
    assert a2["customer_id"] == a1["customer_id"] and a2["visit_id"] == a1["visit_id"]
    assert a3["customer_id"] == a1["customer_id"] and a3["visit_id"] != a1["visit_id"]
    assert not a2["is_new_customer"] and not a3["is_new_customer"]

    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 4
    assert after["customers"] == before["customers"] + 2
    assert after["visits"] == before["visits"] + 3

    # the whole batch again (the edge never got the answer): nothing counts twice
    again = await send_batch(ingest_client, batch, world.worker_a)
    replayed = again.json()["results"]
    assert [r["status"] for r in replayed] == [200, 200, 422, 400, 200, 200]
    assert all(replayed[i]["replayed"] for i in (0, 1, 4, 5))
    assert [replayed[i]["visit_id"] for i in (0, 1, 4, 5)] == [
        results[i]["visit_id"] for i in (0, 1, 4, 5)
    ]
    assert await counts(db, world.tenant_id) == after


async def test_the_same_event_twice_in_one_batch_counts_once(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    event = structured(track_event(world, person(), T0 + timedelta(hours=5)))
    changed = json.loads(json.dumps(event))
    changed["data"]["frames_seen"] = 99  # the same id with other data
    before = await counts(db, world.tenant_id)
    results = (await send_batch(ingest_client, [event, event, changed], world.worker_a)).json()
    first, second, third = results["results"]
    assert first["status"] == second["status"] == 200
    assert second["replayed"] and second["sighting_id"] == first["sighting_id"]
    assert third["status"] == 409 and third["problem"]["errors"][0]["field"] == "id"
    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 1


async def test_two_tracks_at_once_in_one_batch_are_two_people(
    ingest_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    """The "two faces at once" rule holds inside a batch: a look-alike seen at the same camera at
    the same time by another track is never linked to the first."""
    twin = person()
    start = T0 + timedelta(hours=7)
    batch = [
        structured(track_event(world, twin, start, track="cam:t1")),
        structured(track_event(world, twin, start + timedelta(seconds=2), track="cam:t2")),
    ]
    first, second = (await send_batch(ingest_client, batch, world.worker_a)).json()["results"]
    assert first["status"] == second["status"] == 200
    assert first["customer_id"] != second["customer_id"]


async def test_someone_already_stored_at_the_camera_then_is_busy_for_every_track_of_a_batch(
    ingest_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    """Who else was at the camera during each pass is read for all of a batch's tracks in one
    statement: a stored sighting makes its person busy for the overlapping track only."""
    twin, stranger = person(), person()
    start = T0 + timedelta(hours=9)
    stored = reply_of(
        await send(ingest_client, track_event(world, twin, start, track="cam:s1"), world.worker_a)
    )
    batch = [
        structured(track_event(world, person(), start + timedelta(hours=1), track="cam:s3")),
        structured(track_event(world, twin, start + timedelta(seconds=2), track="cam:s2")),
        structured(track_event(world, stranger, start + timedelta(hours=2), track="cam:s4")),
    ]
    results = (await send_batch(ingest_client, batch, world.worker_a)).json()["results"]
    assert [r["status"] for r in results] == [200, 200, 200]
    # at the same camera at the same time as the stored pass: never its person
    assert results[1]["customer_id"] != stored.data["customer_id"]
    assert results[1]["is_new_customer"]
    # the same face an hour later at that camera is that person again (not busy then)
    later = reply_of(
        await send(
            ingest_client, track_event(world, twin, start + timedelta(hours=3), track="cam:s5"),
            world.worker_a,
        )
    )  # fmt: skip
    assert later.data["customer_id"] in {stored.data["customer_id"], results[1]["customer_id"]}


async def test_a_batch_is_refused_whole_only_when_the_request_is_bad(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    event = structured(track_event(world, person(), T0 + timedelta(hours=9)))
    before = await counts(db, world.tenant_id)
    assert (await send_batch(ingest_client, [event], None)).status_code == 401
    elsewhere = structured(track_event(world, person(), T0, camera=world.camera_b))
    refused = (await send_batch(ingest_client, [elsewhere], world.worker_a)).json()["results"]
    assert refused[0]["status"] == 403  # a camera this worker does not own
    bodies: list[Any] = [{"not": "a list"}, []]
    for body in bodies:
        response = await send_batch(ingest_client, body, world.worker_a)
        assert response.status_code == 400
    too_many = await send_batch(ingest_client, [event] * 101, world.worker_a)
    assert too_many.status_code == 413
    garbled = await ingest_client.post(
        "/v1/events", headers={"content-type": BATCH, "authorization": f"Bearer {world.worker_a}"},
        content=b"[{",
    )  # fmt: skip
    assert garbled.status_code == 400
    assert await counts(db, world.tenant_id) == before
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM sightings WHERE ce_id = $1", event["id"]) == 0
        )
