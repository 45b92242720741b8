"""What the web console reads beyond the reports: the audit log (filters, pages, the chain's
verification for one tenant), a visit's or sighting's retained snapshot (scoped, audited, 404 once
purged), one customer and the id search, and each camera's newest sighting (edge health)."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from minio import Minio

from tests.conftest import TenantWorld, function_clients, make_world, ok
from tests.functions.test_ingest import T0, person, send, track_event
from visitlens.adapters.endpoints import database_dsns
from visitlens.adapters.postgres import Database
from visitlens.config import Settings

pytestmark = pytest.mark.integration
JPEG = b"\xff\xd8\xff\xe0" + b"1" * 300 + b"\xff\xd9"


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients("ingest", "merge") as made:
        yield made


async def test_the_audit_log_reads_filters_pages_and_verifies(
    api_client: httpx.AsyncClient, world: TenantWorld, db: Database, stack_settings: Settings
) -> None:
    audit = f"/v1/tenants/{world.tenant_id}/audit"
    admin = world.auth(world.admin)
    for i in range(3):
        await ok(await api_client.post(f"/v1/tenants/{world.tenant_id}/sites", headers=admin,
                                       json={"name": f"extra {i}", "timezone": "Europe/Berlin"}), 201)  # fmt: skip
    entries = (await ok(await api_client.get(audit, headers=admin)))["items"]
    assert entries[0]["action"] == "site.create"  # newest first
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert all("password" not in str(e["details"]) for e in entries)

    sites = await ok(await api_client.get(audit, headers=admin, params={"action": "site."}))
    assert len(sites["items"]) == 5 and {e["action"] for e in sites["items"]} == {"site.create"}
    exact = await ok(await api_client.get(audit, headers=admin, params={"action": "camera.create"}))
    assert {e["action"] for e in exact["items"]} == {"camera.create"} and exact["items"]
    # pages: one at a time, no entry twice, none left out
    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"action": "site.", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await ok(await api_client.get(audit, headers=admin, params=params))
        seen += [e["id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [e["id"] for e in sites["items"]]
    since = sites["items"][0]["at"]
    assert [e["id"] for e in (await ok(await api_client.get(
        audit, headers=admin, params={"since": since})))["items"]] == [sites["items"][0]["id"]]  # fmt: skip

    bad = await api_client.get(audit, headers=admin, params={"action": "x; drop", "limit": 0})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"query.action", "query.limit"}
    assert (await api_client.get(audit, headers=world.auth(world.manager_a))).status_code == 403
    other = await make_world(db, api_client)
    assert (await api_client.get(audit, headers=other.auth(other.admin))).status_code == 403
    theirs = await ok(await api_client.get(f"/v1/tenants/{other.tenant_id}/audit",
                                           headers=other.auth(other.admin)))  # fmt: skip
    assert not {e["id"] for e in theirs["items"]} & {e["id"] for e in entries}

    verification = f"{audit}/verification"
    clean = await ok(await api_client.get(verification, headers=admin))
    assert clean["ok"] is True and clean["problems"] == [] and clean["rows"] >= 5
    assert len(clean["head_hash"]) == 64
    owner_dsn, _ = database_dsns(stack_settings)
    owner = await asyncpg.connect(owner_dsn)
    try:  # an edit behind the application's back shows in the console's verification
        async with owner.transaction():
            await owner.execute("SELECT set_config('app.tenant_id', $1, true)", world.tenant_id)
            await owner.execute(
                "UPDATE audit_log SET details = '{\"forged\": true}' WHERE tenant_id = $1 AND seq = 2",
                uuid.UUID(world.tenant_id),
            )
    finally:
        await owner.close()
    forged = await ok(await api_client.get(verification, headers=admin))
    assert forged["ok"] is False and any(p.startswith("edited: seq 2") for p in forged["problems"])
    # the other tenant's chain is its own
    assert (await ok(await api_client.get(f"/v1/tenants/{other.tenant_id}/audit/verification",
                                          headers=other.auth(other.admin))))["ok"] is True  # fmt: skip


async def test_snapshots_customers_and_camera_health_for_the_console(
    api_client: httpx.AsyncClient,
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    minio_client: Minio,
    stack_settings: Settings,
) -> None:
    bucket = stack_settings.s3.raw_bucket
    key = f"{world.tenant_id}/{world.site_a}/{world.camera_a}/2026-11-20/{uuid.uuid4().hex}.jpg"
    minio_client.put_object(bucket, key, io.BytesIO(JPEG), len(JPEG))
    kept = await ok(await send(clients["ingest"], track_event(world, person(), T0, snapshot_key=key),
                               world.worker_a))  # fmt: skip
    bare = await ok(await send(clients["ingest"], track_event(
        world, person(), T0 + timedelta(minutes=1), snapshot_key=None),
        world.worker_a))  # fmt: skip
    admin = world.auth(world.admin)
    t = f"/v1/tenants/{world.tenant_id}"

    shot = await api_client.get(f"{t}/visits/{kept['visit_id']}/snapshot", headers=admin)
    assert shot.status_code == 200 and shot.content == JPEG
    assert shot.headers["content-type"] == "image/jpeg"
    assert "private" in shot.headers["cache-control"]
    manager = await api_client.get(f"{t}/visits/{kept['visit_id']}/snapshot",
                                   headers=world.auth(world.manager_a))  # fmt: skip
    assert manager.status_code == 200  # site A is the manager's own
    assert (await api_client.get(f"{t}/visits/{bare['visit_id']}/snapshot",
                                 headers=admin)).status_code == 404  # fmt: skip
    assert (await api_client.get(f"{t}/visits/{uuid.uuid4()}/snapshot",
                                 headers=admin)).status_code == 404  # fmt: skip
    audit = await ok(await api_client.get(f"{t}/audit", headers=admin,
                                          params={"action": "snapshot.view"}))  # fmt: skip
    assert len(audit["items"]) == 2 and audit["items"][0]["target_id"] == kept["visit_id"]

    persons = clients["merge"]
    p = f"/v1/persons/{world.tenant_id}"
    customer = await ok(await persons.get(f"{p}/customers/{kept['customer_id']}", headers=admin))
    assert customer["visit_count"] == 1 and customer["views"] >= 1
    assert (await persons.get(f"{p}/customers/{uuid.uuid4()}", headers=admin)).status_code == 404
    found = await ok(await persons.get(f"{p}/customers", headers=admin,
                                       params={"q": kept["customer_id"][:8].upper()}))  # fmt: skip
    assert [c["id"] for c in found["items"]] == [kept["customer_id"]]
    bad = await persons.get(f"{p}/customers", headers=admin, params={"q": "x'"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.q"
    sightings = (await ok(await persons.get(f"{p}/customers/{kept['customer_id']}/sightings",
                                            headers=admin)))["items"]  # fmt: skip
    assert [s["has_snapshot"] for s in sightings] == [True]
    image = await persons.get(f"{p}/sightings/{sightings[0]['id']}/snapshot", headers=admin)
    assert image.status_code == 200 and image.content == JPEG
    # retention removed the object: 404, never a 5xx
    minio_client.remove_object(bucket, key)
    assert (await persons.get(f"{p}/sightings/{sightings[0]['id']}/snapshot",
                              headers=admin)).status_code == 404  # fmt: skip
    assert (await api_client.get(f"{t}/visits/{kept['visit_id']}/snapshot",
                                 headers=admin)).status_code == 404  # fmt: skip

    cameras = (await ok(await api_client.get(f"{t}/sites/{world.site_a}/cameras",
                                             headers=admin)))["items"]  # fmt: skip
    health = {c["id"]: c["last_sighting_at"] for c in cameras}
    assert health[world.camera_a] is not None and health[world.camera_a].startswith(
        T0.date().isoformat()
    )
    idle = await ok(await api_client.get(f"{t}/sites/{world.site_b}/cameras", headers=admin))
    assert [c["last_sighting_at"] for c in idle["items"]] == [None]
