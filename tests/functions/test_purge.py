"""The `purge` function on its real trigger (a PingSource CloudEvent): data aged 31 days (a
simulated clock: capture times and key dates in the past) against the default 30-day retention;
another tenant with 60 days keeps its snapshot; a second run finds nothing."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from minio import Minio

from tests.conftest import TenantWorld, delivery, load_function, make_world
from visitlens.adapters.endpoints import Endpoints, StackState, embedded_dsn
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.ports import DbScope
from visitlens_dev.stack import s3 as s3_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def purge_client(function_environment: None) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=load_function("purge")), base_url="http://purge.test"
    ) as client:
        yield client


def tick(issuer: EventTokenIssuer | None = None) -> tuple[dict[str, str], bytes]:
    """A PingSource tick; with ``issuer``, carrying the delivery token a PingSource sends."""
    event = CloudEvent({"type": "dev.knative.sources.ping", "id": uuid.uuid4().hex,
                        "source": "/apis/v1/namespaces/visitlens/pingsources/purge-nightly"}, {})  # fmt: skip
    headers, body = to_binary(event)
    return (delivery(issuer, "purge", headers) if issuer else dict(headers)), body


async def snapshot(
    db: Database, minio: Minio, bucket: str, world: TenantWorld, age: timedelta, in_db: bool = True
) -> str:
    captured = datetime.now(UTC) - age
    key = (f"{world.tenant_id}/{world.site_a}/{world.camera_a}/"
           f"{captured.date().isoformat()}/{uuid.uuid4().hex}.jpg")  # fmt: skip
    minio.put_object(bucket, key, io.BytesIO(b"jpeg"), 4)
    if in_db:
        async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
            await conn.execute(
                "INSERT INTO sightings (tenant_id, site_id, camera_id, ce_source, ce_id, ce_type, "
                "captured_at, last_seen_at, track_id, decision, snapshot_key) VALUES ($1, $2, $3, "
                "'/s', $4, 't', $5, $5, 't1', 'rejected', $6)",
                uuid.UUID(world.tenant_id), uuid.UUID(world.site_a), uuid.UUID(world.camera_a),
                uuid.uuid4().hex, captured, key,
            )  # fmt: skip
    return key


def exists(minio: Minio, bucket: str, key: str) -> bool:
    return any(o.object_name == key for o in minio.list_objects(bucket, prefix=key))


async def test_thirty_one_days_old_snapshots_go_and_a_second_run_finds_nothing(
    purge_client: httpx.AsyncClient,
    world: TenantWorld,
    db: Database,
    api_client: httpx.AsyncClient,
    stack_settings: Settings,
    endpoints: Endpoints,
    event_issuer: EventTokenIssuer,
) -> None:
    minio = s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)
    bucket = stack_settings.s3.raw_bucket
    old = await snapshot(db, minio, bucket, world, timedelta(days=31))
    fresh = await snapshot(db, minio, bucket, world, timedelta(days=1))
    orphan = await snapshot(db, minio, bucket, world, timedelta(days=31), in_db=False)
    other = await make_world(db, api_client)
    await api_client.patch(f"/v1/tenants/{other.tenant_id}", headers=other.auth(other.root),
                           json={"raw_retention_days": 60})  # fmt: skip
    kept_elsewhere = await snapshot(db, minio, bucket, other, timedelta(days=31))

    unsigned = await purge_client.post("/", headers=tick()[0], content=tick()[1])
    assert unsigned.status_code == 401  # a tick without the PingSource's token runs nothing
    response = await purge_client.post("/", headers=tick(event_issuer)[0], content=b"{}")
    assert response.status_code == 200, response.text
    mine = next(t for t in response.json()["tenants"] if t["tenant_id"] == world.tenant_id)
    assert mine["objects_deleted"] == 2 and mine["pointers_cleared"] == 1
    assert mine["survivors"] == 1 and mine["survivors_remaining"] == 0  # the orphan was found
    assert not exists(minio, bucket, old) and not exists(minio, bucket, orphan)
    assert exists(minio, bucket, fresh) and exists(minio, bucket, kept_elsewhere)
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        keys = {r["snapshot_key"] for r in await conn.fetch("SELECT snapshot_key FROM sightings")}
        assert keys == {fresh, None}
        audit = await conn.fetchval(
            "SELECT details FROM audit_log WHERE action = 'retention.purge' ORDER BY seq DESC LIMIT 1"
        )
        assert audit["objects_deleted"] == 2

        run = await conn.fetchrow("SELECT * FROM retention_runs")
        assert run is not None and (run["objects_deleted"], run["survivors_remaining"]) == (2, 0)

    again = await purge_client.post("/", headers=tick(event_issuer)[0], content=b"{}")
    assert again.status_code == 200 and again.json()["failed"] == []
    # purged within the day: the next hourly tick passes the tenant by (a second run that is
    # due finds nothing: tests/unit/test_purge_units.py)
    assert world.tenant_id not in {t["tenant_id"] for t in again.json()["tenants"]}

    wrong = CloudEvent({"type": "com.visitlens.face.detected.v2", "source": "/x", "id": "1"}, {})
    headers, body = to_binary(wrong)
    signed = delivery(event_issuer, "purge", headers)
    assert (await purge_client.post("/", headers=signed, content=body)).status_code == 422
    bare = delivery(event_issuer, "purge")
    assert (await purge_client.post("/", headers=bare, content=b"{}")).status_code == 400


async def test_the_database_exporter_reads_the_retention_state_as_pg_monitor(
    purge_client: httpx.AsyncClient,
    world: TenantWorld,
    db: Database,
    stack_settings: Settings,
    event_issuer: EventTokenIssuer,
) -> None:
    """What CloudNativePG's exporter does at scrape time (charts/components/postgres/metrics.yaml):
    as ``postgres`` with the pg_monitor role, call retention_state() — counts only, every tenant
    seen — while pg_monitor reads none of our tables itself. The tick's audit-chain verification
    is kept with each tenant's run, and an edited audit row shows up there."""
    import asyncpg

    state = StackState.load(stack_settings.data_dir)
    superuser = embedded_dsn(state.postgres_socket_dir, "postgres", stack_settings.database.name)

    async def as_exporter(query: str) -> asyncpg.Record | None:
        conn = await asyncpg.connect(superuser)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE pg_monitor")
                row = await conn.fetchrow(query)
                # the function's system scope never outlives its own query
                scope = await conn.fetchval("SELECT current_setting('app.system_admin', true)")
                assert scope in (None, ""), scope
                return row
        finally:
            await conn.close()

    response = await purge_client.post("/", headers=tick(event_issuer)[0], content=b"{}")
    assert response.status_code == 200, response.text
    before = await as_exporter("SELECT * FROM retention_state()")
    assert before is not None and before["tenants"] >= 1 and before["never_purged"] == 0
    # (other tests' tenants may carry edited chains of their own: only the change is ours)
    assert before["oldest_run_age_seconds"] < 300
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_exporter("SELECT count(*) FROM retention_runs")

    # an audit row of the tenant edited behind the application's back: the verification after
    # its next purge finds it, and the exporter reports it (the row is put back afterwards)
    tenant = uuid.UUID(world.tenant_id)
    conn = await asyncpg.connect(superuser)
    first = await conn.fetchrow(
        "SELECT seq, details FROM audit_log WHERE tenant_id = $1 ORDER BY seq LIMIT 1", tenant
    )
    assert first is not None
    seq, details = first["seq"], first["details"]
    try:
        await conn.execute(
            "UPDATE audit_log SET details = '{\"edited\": true}' WHERE tenant_id = $1 AND seq = $2",
            tenant,
            seq,
        )
        await conn.execute("DELETE FROM retention_runs WHERE tenant_id = $1", tenant)  # due now
        again = await purge_client.post("/", headers=tick(event_issuer)[0], content=b"{}")
        assert world.tenant_id in {t["tenant_id"] for t in again.json()["tenants"]}
        after = await as_exporter("SELECT * FROM retention_state()")
        assert after is not None
        assert after["audit_chain_problems"] >= before["audit_chain_problems"] + 1
    finally:
        await conn.execute(
            "UPDATE audit_log SET details = $3 WHERE tenant_id = $1 AND seq = $2",
            tenant,
            seq,
            details,
        )
        await conn.close()
