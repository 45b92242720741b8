"""One bad event fails alone: a poisoned event among 32 valid ones sent at once (the group commit
works them together) or in one batch gets its own 4xx naming the field, the 32 count, and a retry
of the poisoned one is a 4xx again, never a 5xx the edge would retry for ever."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import TenantWorld
from tests.functions.test_ingest import T0, counts, ingest_client, person, send, track_event
from tests.functions.test_ingest_batch import send_batch, structured
from visitlens.adapters.postgres import Database

__all__ = ["ingest_client"]  # the module-scoped fixture, shared
pytestmark = pytest.mark.integration


def poisoned(world: TenantWorld) -> dict[str, Any]:
    """The probe's event: a pass on 1 January of year 1 at +14:00 (its shots likewise)."""
    event = track_event(world, person(), T0)
    data = event["data"]
    data.update(first_seen="0001-01-01T00:00:00+14:00", last_seen="0001-01-01T00:00:05+14:00")
    for shot in data["shots"]:
        shot["ts"] = "0001-01-01T00:00:02+14:00"
    return event


def valid(world: TenantWorld, n: int) -> list[dict[str, Any]]:
    return [track_event(world, person(), T0 + timedelta(minutes=i)) for i in range(n)]


async def test_a_poisoned_event_among_32_concurrent_ones_fails_alone(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    before = await counts(db, world.tenant_id)
    events = valid(world, 32)
    bad = poisoned(world)
    events.insert(11, bad)
    responses = await asyncio.gather(*(send(ingest_client, e, world.worker_a) for e in events))
    refused = responses.pop(11)
    assert [r.status_code for r in responses] == [200] * 32
    assert refused.status_code == 422, refused.text
    assert {e["field"] for e in refused.json()["errors"]} >= {"data.first_seen", "data.last_seen"}
    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 32
    assert after["customers"] == before["customers"] + 32
    again = await send(ingest_client, bad, world.worker_a)  # the edge's retry: refused again
    assert again.status_code == 422
    assert await counts(db, world.tenant_id) == after


async def test_a_poisoned_event_inside_a_batch_fails_alone(
    ingest_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    before = await counts(db, world.tenant_id)
    events = [structured(e) for e in valid(world, 32)]
    events.insert(5, structured(poisoned(world)))
    response = await send_batch(ingest_client, events, world.worker_a)
    assert response.status_code == 200, response.text
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == [200] * 5 + [422] + [200] * 27
    after = await counts(db, world.tenant_id)
    assert after["sightings"] == before["sightings"] + 32
