"""Report totals a store owner can trust (issue 11): after 8 concurrent senders the report equals
the visit list within seconds with no manual call; a 10-day-old event lands in its day; a visit
whose visit.recorded never arrives is still counted (the outbox and the minutely tick); the report
says how fresh it is."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import DevServer, TenantWorld, delivery, function_clients, make_world, ok
from tests.functions.test_ingest import person, send, track_event
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration


async def report(client: httpx.AsyncClient, world: TenantWorld, day: str) -> dict[str, Any]:
    result: dict[str, Any] = await ok(
        await client.get(
            f"/v1/tenants/{world.tenant_id}/reports/visits",
            headers=world.auth(world.admin),
            params={"start": day, "end": day, "granularity": "hour"},
        )
    )
    return result


async def visit_count(db: Database, world: TenantWorld, day: datetime) -> int:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM visits v JOIN sites s ON s.id = v.site_id "
            "WHERE (v.started_at AT TIME ZONE s.timezone)::date = $1",
            day.date(),
        )
    return count


async def until_equal(
    client: httpx.AsyncClient, world: TenantWorld, db: Database, day: datetime, within_s: float
) -> tuple[int, int]:
    deadline = time.monotonic() + within_s
    while True:
        reported = (await report(client, world, day.date().isoformat()))["totals"]["visits"]
        listed = await visit_count(db, world, day)
        if reported == listed or time.monotonic() > deadline:
            return reported, listed
        await asyncio.sleep(0.25)


def encoded(event: dict[str, Any], token: str) -> tuple[dict[str, str], bytes]:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/cloudevents+json"}
    return headers, json.dumps(event).encode()


async def test_concurrent_senders_and_a_late_event_leave_the_report_equal_to_the_visits(
    dev_server: DevServer, db: Database, api_client: httpx.AsyncClient
) -> None:
    world = await make_world(db, api_client)
    # Berlin site: one local day, many visits in the same few hours (the racing case)
    day = (datetime.now(UTC) - timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    people = [person() for _ in range(40)]
    events = []
    for i in range(120):  # 40 people, 3 passes each, 25 minutes apart: extends and new visits
        start = day + timedelta(minutes=(i % 3) * 25 + (i // 3) % 7)
        events.append(track_event(world, people[i // 3], start, seconds=20))
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    statuses: list[int] = []

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            headers, body = encoded(queue.get_nowait(), world.worker_a)
            statuses.append(
                (await client.post("/v1/events", headers=headers, content=body)).status_code
            )

    async with httpx.AsyncClient(base_url=dev_server.base, timeout=60) as client:
        await asyncio.gather(*(sender(client) for _ in range(8)))
        assert statuses.count(200) == len(events), statuses
        reported, listed = await until_equal(client, world, db, day, within_s=15)
        assert reported == listed > 0

        # a late event: 10 days old, replayed after an outage, lands in its own day's report
        late_day = (datetime.now(UTC) - timedelta(days=10)).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        headers, body = encoded(track_event(world, person(), late_day), world.worker_a)
        assert (await client.post("/v1/events", headers=headers, content=body)).status_code == 200
        reported, listed = await until_equal(client, world, db, late_day, within_s=15)
        assert reported == listed == 1
        fresh = (await report(client, world, late_day.date().isoformat()))["freshness"]
        assert fresh["newest_aggregated_visit_at"] is not None


async def test_a_visit_whose_announcement_is_lost_is_counted_by_the_next_tick(
    world: TenantWorld, db: Database, api_client: httpx.AsyncClient, event_issuer: EventTokenIssuer
) -> None:
    """In-process ingest publishes nothing (no K_SINK): only the outbox knows the hour."""
    day = (datetime.now(UTC) - timedelta(days=3)).replace(
        hour=14, minute=0, second=0, microsecond=0
    )
    async with function_clients("ingest", "aggregate") as fn:
        for minutes in (0, 40, 90):
            event = track_event(world, person(), day + timedelta(minutes=minutes))
            assert (await send(fn["ingest"], event, world.worker_a)).status_code == 200
        before = await report(api_client, world, day.date().isoformat())
        assert before["totals"]["visits"] == 0 and before["freshness"]["pending_hours"] >= 2
        tick = {"specversion": "1.0", "type": "dev.knative.sources.ping", "id": uuid.uuid4().hex,
                "source": "/apis/v1/namespaces/visitlens/pingsources/aggregate-tick",
                "datacontenttype": "application/json", "data": {"hours": 0}}  # fmt: skip
        headers = delivery(
            event_issuer, "aggregate", {"content-type": "application/cloudevents+json"}
        )
        drained = await ok(
            await fn["aggregate"].post("/", headers=headers, content=json.dumps(tick))
        )
        assert drained["hours"] >= 2
    after = await report(api_client, world, day.date().isoformat())
    assert after["totals"]["visits"] == 3 == await visit_count(db, world, day)
    assert after["freshness"]["pending_hours"] == 0
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        newest = await conn.fetchval("SELECT max(updated_at) FROM visits")
    assert datetime.fromisoformat(after["freshness"]["newest_aggregated_visit_at"]) == newest
    assert np.isfinite(after["totals"]["avg_dwell_s"])
