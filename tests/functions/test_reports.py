"""Reports and the `aggregate` function: hourly statistics from visits (in each site's local
time), kept current by visit.recorded events, a cron tick and an admin route; the report API,
its CSV export and roles."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.conftest import TenantWorld, delivery, load_function, ok
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration
DAY = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday; Berlin is UTC+1 in November


@pytest.fixture(scope="module")
async def aggregate_client(function_environment: None) -> AsyncIterator[httpx.AsyncClient]:
    app = load_function("aggregate")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://aggregate.test"
    ) as client:
        yield client


async def seed(db: Database, world: TenantWorld) -> dict[str, Any]:
    """Site A (Berlin): Ann new at 09:30Z (10:30 local) for 20 min and back next day at 17:00Z;
    Bob new at 09:45Z for 2 min; an erased person's visit at 11:00Z. Site B (UTC): Ann at 12:00Z."""
    tenant, a, b = (uuid.UUID(x) for x in (world.tenant_id, world.site_a, world.site_b))
    async with db.transaction(DbScope(tenant)) as conn:
        ann = await conn.fetchval(
            "INSERT INTO customers (tenant_id, first_seen_at, last_seen_at, gender, age_band) "
            "VALUES ($1, $2, $2, 'female', '25-34') RETURNING id", tenant, DAY,
        )  # fmt: skip
        bob = await conn.fetchval(
            "INSERT INTO customers (tenant_id, first_seen_at, last_seen_at) VALUES ($1, $2, $2) "
            "RETURNING id", tenant, DAY,
        )  # fmt: skip
        rows = [
            (a, ann, DAY + timedelta(hours=9, minutes=30), 20 * 60, True),
            (a, bob, DAY + timedelta(hours=9, minutes=45), 120, True),
            (a, None, DAY + timedelta(hours=11), 30, True),
            (a, ann, DAY + timedelta(days=1, hours=17), 45 * 60, False),
            (b, ann, DAY + timedelta(hours=12), 10, False),
        ]
        for site, person, start, dwell, is_new in rows:
            await conn.execute(
                "INSERT INTO visits (tenant_id, site_id, customer_id, started_at, ended_at, is_new)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                tenant, site, person, start, start + timedelta(seconds=dwell), is_new,
            )  # fmt: skip
    return {"ann": ann, "bob": bob}


def tick(hours: int) -> tuple[dict[str, str], bytes]:
    event = CloudEvent(
        {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/x/pingsources/a",
         "id": uuid.uuid4().hex, "datacontenttype": "application/json"},
        {"hours": hours},
    )  # fmt: skip
    headers, body = to_binary(event)
    return dict(headers), body


async def stats_rows(db: Database, world: TenantWorld) -> list[Any]:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        return list(
            await conn.fetch(
                "SELECT site_id, local_hour, visits, new_visits, unique_visitors, dwell_hist, "
                "female, age_bands FROM visit_stats_hourly ORDER BY site_id, local_hour"
            )
        )


async def test_aggregate_triggers_and_report_api(
    aggregate_client: httpx.AsyncClient,
    api_client: httpx.AsyncClient,
    world: TenantWorld,
    db: Database,
    event_issuer: EventTokenIssuer,
) -> None:
    people = await seed(db, world)
    # 1. visit.recorded: only that visit's local hour at that site
    data = {
        "tenant_id": world.tenant_id, "site_id": world.site_a, "camera_id": world.camera_a,
        "visit_id": str(uuid.uuid4()), "customer_id": str(people["ann"]),
        "sighting_id": str(uuid.uuid4()), "started_at": (DAY + timedelta(hours=9, minutes=30)).isoformat(),
        "ended_at": (DAY + timedelta(hours=9, minutes=50)).isoformat(), "is_new_customer": True,
        "opened_visit": True, "similarity": None, "dwell_s": 1200.0, "visit_count": 1,
    }  # fmt: skip
    headers, body = to_binary(
        CloudEvent({"type": "com.visitlens.visit.recorded.v1", "source": "/x", "id": "v1"}, data)
    )
    unsigned = await aggregate_client.post("/", headers=dict(headers), content=body)
    assert unsigned.status_code == 401  # only the Broker may deliver: nothing rebuilt
    elsewhere = await aggregate_client.post(
        f"/v1/aggregate/{world.tenant_id}/rematerialise", headers=dict(headers), content=body
    )
    assert elsewhere.status_code == 401  # CloudEvent headers on a public path: an HTTP request
    assert await stats_rows(db, world) == []
    response = await aggregate_client.post(
        "/", headers=delivery(event_issuer, "aggregate", headers), content=body
    )
    assert response.status_code == 200, response.text
    rows = await stats_rows(db, world)
    assert [(r["local_hour"], r["visits"]) for r in rows] == [(datetime(2026, 11, 16, 10), 2)]
    assert rows[0]["unique_visitors"] == 2 and rows[0]["female"] == 1
    assert rows[0]["dwell_hist"] == [0, 1, 0, 1, 0, 0] and rows[0]["age_bands"] == {"25-34": 1}

    # 2. the cron tick, reaching back just past the seed (every tenant of the test database is
    # rebuilt over that span, so no further)
    for _ in range(2):  # idempotent: twice, the same rows
        headers_t, body_t = tick(int((datetime.now(UTC) - DAY).total_seconds() // 3600) + 48)
        assert (
            await aggregate_client.post(
                "/", headers=delivery(event_issuer, "aggregate", headers_t), content=body_t
            )
        ).status_code == 200
        again = await stats_rows(db, world)
    assert sum(r["visits"] for r in again) == 5 and len(again) == 4

    # 3. the admin route: any range; roles; bad input
    path = f"/v1/aggregate/{world.tenant_id}/rematerialise"
    span = {"start": DAY.isoformat(), "end": (DAY + timedelta(days=2)).isoformat()}
    done = await ok(await aggregate_client.post(path, headers=world.auth(world.admin), json=span))
    assert done["visits"] == 5
    assert (await aggregate_client.post(path, json=span)).status_code == 401
    assert (
        await aggregate_client.post(path, headers=world.auth(world.manager_a), json=span)
    ).status_code == 403
    backwards = {"start": span["end"], "end": span["start"]}
    assert (
        await aggregate_client.post(path, headers=world.auth(world.admin), json=backwards)
    ).status_code == 422
    wrong = CloudEvent({"type": "com.visitlens.face.detected.v2", "source": "/x", "id": "w"}, {})
    h, b = to_binary(wrong)
    signed = delivery(event_issuer, "aggregate", h)
    assert (await aggregate_client.post("/", headers=signed, content=b)).status_code == 422

    # 4. the report API, in local time
    r = f"/v1/tenants/{world.tenant_id}/reports"
    q = {"start": "2026-11-16", "end": "2026-11-17"}
    series = await ok(
        await api_client.get(f"{r}/visits", headers=world.auth(world.admin), params=q)
    )
    assert [b["visits"] for b in series["buckets"]] == [4, 1]
    assert series["totals"] == {
        "visits": 5, "new_visits": 3, "returning_visits": 2, "unique_visitors": 3,
        "avg_dwell_s": round((1200 + 120 + 30 + 2700 + 10) / 5, 1),
    }  # fmt: skip
    # distinct visitors over a month are exact (they were null beyond 7 days); beyond a quarter
    # the buckets carry them
    month = {"start": "2026-11-01", "end": "2026-11-30"}
    whole = await ok(
        await api_client.get(f"{r}/visits", headers=world.auth(world.admin), params=month)
    )
    assert whole["totals"]["unique_visitors"] == 3 and whole["totals"]["visits"] == 5
    year = {"start": "2026-01-01", "end": "2026-12-31", "granularity": "month"}
    long = await ok(
        await api_client.get(f"{r}/visits", headers=world.auth(world.admin), params=year)
    )
    assert long["totals"]["unique_visitors"] is None and long["totals"]["visits"] == 5
    site_a = await ok(await api_client.get(f"{r}/visits", headers=world.auth(world.admin),
                                            params={**q, "site_id": world.site_a, "granularity": "hour"}))  # fmt: skip
    assert [(b["start"][11:16], b["visits"]) for b in site_a["buckets"]] == [
        ("10:00", 2),
        ("12:00", 1),
        ("18:00", 1),
    ]
    heat = await ok(await api_client.get(f"{r}/heatmap", headers=world.auth(world.admin), params=q))
    assert heat["visits"][0][10] == 2 and heat["visits"][1][18] == 1 and heat["visits"][0][12] == 2
    demo = await ok(
        await api_client.get(f"{r}/demographics", headers=world.auth(world.admin), params=q)
    )
    assert demo["gender"] == {"female": 3, "male": 0, "unknown": 2}
    dwell = await ok(await api_client.get(f"{r}/dwell", headers=world.auth(world.admin), params=q))
    assert [b["visits"] for b in dwell["buckets"]] == [2, 1, 0, 1, 1, 0]

    # CSV: the same figures, totals row equal to the API's totals; the export is audited
    exported = await api_client.get(f"{r}/visits.csv", headers=world.auth(world.admin), params=q)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(exported.text)))
    assert table[-1] == ["total", "5", "3", "2", "3", str(series["totals"]["avg_dwell_s"])]
    assert [int(row[1]) for row in table[1:-1]] == [4, 1]
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        assert (
            await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'report.export'")
            == 1
        )

    # the visit list, newest first, paginated
    page = await ok(await api_client.get(f"/v1/tenants/{world.tenant_id}/visits",
                                         headers=world.auth(world.admin), params={**q, "limit": 2}))  # fmt: skip
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await ok(await api_client.get(f"/v1/tenants/{world.tenant_id}/visits", headers=world.auth(world.admin),
                                         params={**q, "limit": 10, "cursor": page["next_cursor"]}))  # fmt: skip
    assert len(rest["items"]) == 3 and rest["next_cursor"] is None
    assert any(item["customer_id"] is None for item in rest["items"])  # the erased person's visit

    # roles and scope: a manager of site A sees site A only; a worker sees nothing
    mine = await ok(
        await api_client.get(f"{r}/visits", headers=world.auth(world.manager_a), params=q)
    )
    assert mine["totals"]["visits"] == 4
    other = await api_client.get(
        f"{r}/visits", headers=world.auth(world.manager_a), params={**q, "site_id": world.site_b}
    )
    assert other.status_code == 403
    assert (
        await api_client.get(f"{r}/visits", headers=world.auth(world.worker_a), params=q)
    ).status_code == 403
    assert (await api_client.get(f"{r}/visits", params=q)).status_code == 401
    bad = await api_client.get(f"{r}/visits", headers=world.auth(world.admin),
                               params={"start": "2026-11-17", "end": "2026-11-16", "granularity": "year"})  # fmt: skip
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} >= {"query.granularity"}
