"""The live monitor through the gateway and a real `api` function process: a new visit arrives as a
Server-Sent Event within 2 s (target < 500 ms), and a reconnect with Last-Event-ID resumes after it."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import DevServer, TenantWorld
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration


async def new_visit(db: Database, world: TenantWorld) -> uuid.UUID:
    tenant = uuid.UUID(world.tenant_id)
    now = datetime.now(UTC)
    async with db.transaction(DbScope(tenant)) as conn:
        person = await conn.fetchval(
            "INSERT INTO customers (tenant_id, first_seen_at, last_seen_at) VALUES ($1, $2, $2) "
            "RETURNING id", tenant, now,
        )  # fmt: skip
        visit: uuid.UUID = await conn.fetchval(
            "INSERT INTO visits (tenant_id, site_id, customer_id, started_at, ended_at, is_new) "
            "VALUES ($1, $2, $3, $4, $5, true) RETURNING id",
            tenant, uuid.UUID(world.site_a), person, now, now + timedelta(seconds=5),
        )  # fmt: skip
    return visit


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Parsed SSE events (event, id, data) as they arrive."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if event.get("event"):
                yield event
            event = {}
            continue
        field, _, value = line.partition(":")
        event[field] = value.lstrip(" ")


async def test_a_new_visit_arrives_live_and_a_reconnect_resumes(
    dev_server: DevServer, world: TenantWorld, db: Database
) -> None:
    url = f"{dev_server.base}/v1/tenants/{world.tenant_id}/monitor"
    headers = world.auth(world.admin)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
        async with http.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            assert (await anext(stream))["event"] == "ready"
            started = time.perf_counter()
            visit = await new_visit(db, world)
            first = await asyncio.wait_for(anext(stream), timeout=2.0)
            latency_ms = (time.perf_counter() - started) * 1000
            assert first["event"] == "visit" and json.loads(first["data"])["visit_id"] == str(visit)
            assert latency_ms < 2000
            last_id = first["id"]
        # a manager of site A sees it too; a worker may not watch
        denied = await http.get(url, headers=world.auth(world.worker_a))
        assert denied.status_code == 403
        assert (await http.get(url)).status_code == 401

        second = await new_visit(db, world)  # happens while nobody listens
        resumed_headers = {**headers, "last-event-id": last_id}
        async with http.stream("GET", url, headers=resumed_headers) as response:
            stream = events(response)
            assert (await anext(stream))["event"] == "ready"
            replayed = await asyncio.wait_for(anext(stream), timeout=5.0)
            assert json.loads(replayed["data"])["visit_id"] == str(second)  # not the first again
        bad = await http.get(url, headers={**headers, "last-event-id": "nonsense"})
        assert bad.status_code == 422
    print(f"monitor latency {latency_ms:.0f} ms")  # noqa: T201 - shown with -s


async def test_more_changes_than_a_page_in_the_overlap_window_all_arrive(
    dev_server: DevServer, world: TenantWorld, db: Database
) -> None:
    """600 visit changes inside the 10-s overlap window: every one is sent (the stream used to
    re-read the same first 500 rows for ever, in a hot loop)."""
    url = f"{dev_server.base}/v1/tenants/{world.tenant_id}/monitor"
    seen: set[str] = set()
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
        async with http.stream("GET", url, headers=world.auth(world.admin)) as response:
            assert response.status_code == 200
            stream = events(response)
            assert (await anext(stream))["event"] == "ready"
            tenant = uuid.UUID(world.tenant_id)
            now = datetime.now(UTC)
            async with db.transaction(DbScope(tenant)) as conn:
                await conn.execute(
                    "INSERT INTO visits (tenant_id, site_id, started_at, ended_at, is_new) "
                    "SELECT $1, $2, $3::timestamptz, $3::timestamptz + interval '5 seconds', true "
                    "FROM generate_series(1, 600)",
                    tenant, uuid.UUID(world.site_a), now,
                )  # fmt: skip
            deadline = time.monotonic() + 20
            async for event in stream:
                if event["event"] == "visit":
                    seen.add(json.loads(event["data"])["visit_id"])
                if len(seen) == 600 or time.monotonic() > deadline:
                    break
    assert len(seen) == 600


async def test_a_disabled_viewer_gets_no_further_visit(
    dev_server: DevServer, world: TenantWorld, db: Database
) -> None:
    """The probe saw one more visit delivered after its viewer was disabled: whether the viewer
    may still watch is checked before every page is sent, so the next event is `revoked`."""
    url = f"{dev_server.base}/v1/tenants/{world.tenant_id}/monitor"
    users = f"{dev_server.base}/v1/tenants/{world.tenant_id}/users"
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=30)) as http:
        listed = (await http.get(users, headers=world.auth(world.admin))).json()["items"]
        manager = next(u["id"] for u in listed if u["email"] == world.manager_email)
        async with http.stream("GET", url, headers=world.auth(world.manager_a)) as response:
            stream = events(response)
            assert (await anext(stream))["event"] == "ready"
            disabled = await http.patch(f"{users}/{manager}", headers=world.auth(world.admin),
                                        json={"disabled": True})  # fmt: skip
            assert disabled.status_code == 200, disabled.text
            await new_visit(db, world)
            after = await asyncio.wait_for(anext(stream), timeout=20.0)
            assert after["event"] == "revoked", after
