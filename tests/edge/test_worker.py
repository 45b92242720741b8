"""The edge worker end to end, against the embedded stack and every function behind the gateway:
(a) a synthetic clip from ../shared/faces with people passing once or twice and one enrolled staff
member gives exactly the expected events and visits; (b) the functions stop mid-run, events wait on
disk, the functions come back, everything is replayed: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import DevServer, TenantWorld, ok
from tests.edge.conftest import (
    edge_config,
    health_port,
    lfw,
    lfw_bytes,
    start_worker,
)
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope
from visitlens.vision.pipeline import Detector
from visitlens_edge.synthetic import Pass, render

pytestmark = pytest.mark.integration
START = "2026-11-20T10:00:00+00:00"


async def prepare_site(api_client: httpx.AsyncClient, dev: DevServer, world: TenantWorld) -> str:
    """Visit window 60 s at site A; Gerhard Schroeder enrolled as staff from two photos."""
    t = f"/v1/tenants/{world.tenant_id}"
    await ok(
        await api_client.patch(
            f"{t}/sites/{world.site_a}",
            headers=world.auth(world.admin),
            json={"visit_window_s": 60},
        )
    )
    async with httpx.AsyncClient(base_url=dev.base, timeout=60) as http:
        staff = await ok(
            await http.post(
                f"/v1/staff/{world.tenant_id}",
                headers=world.auth(world.admin),
                json={"display_name": "Gerhard", "site_id": world.site_a},
            ),
            201,
        )
        for n in (1, 2):
            await ok(
                await http.post(
                    f"/v1/staff/{world.tenant_id}/{staff['id']}/images",
                    headers=world.auth(world.admin),
                    files={"image": ("g.jpg", lfw_bytes("Gerhard_Schroeder", n), "image/jpeg")},
                ),
                201,
            )
    return str(staff["id"])


def store_clip(path: Path, detector: Detector) -> list[Pass]:
    """Blair twice (79 s apart: two visits), Blix once at the same time as Blair's first pass,
    Chretien twice 8 s apart (one visit), and the staff member once."""
    passes = [
        Pass("blair", lfw("Tony_Blair", 1), 2.0),
        Pass("blix", lfw("Hans_Blix", 1), 3.0, lane=1, leftwards=True),
        Pass("staff", lfw("Gerhard_Schroeder", 3), 12.0),
        Pass("chretien", lfw("Jean_Chretien", 1), 20.0, lane=1),
        Pass("chretien", lfw("Jean_Chretien", 2), 32.0, leftwards=True),
        Pass("blair", lfw("Tony_Blair", 2), 85.0, lane=1),
    ]
    render(path, passes, detector, fps=10, length_s=92)
    return passes


async def server_counts(db: Database, world: TenantWorld) -> dict[str, Any]:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        sightings = await conn.fetch(
            "SELECT ce_id, decision, customer_id, visit_id, snapshot_key FROM sightings "
            "WHERE camera_id = $1 ORDER BY captured_at",
            uuid.UUID(world.camera_a),
        )
        visits = await conn.fetch(
            "SELECT customer_id, is_new, sighting_count FROM visits WHERE site_id = $1 "
            "ORDER BY started_at",
            uuid.UUID(world.site_a),
        )
        customers = await conn.fetchval("SELECT count(*) FROM customers")
    return {"sightings": sightings, "visits": visits, "customers": customers}


async def store_setup(
    api_client: httpx.AsyncClient,
    dev: DevServer,
    world: TenantWorld,
    detector: Detector,
    models_dir: Path,
    tmp_path: Path,
    **camera: Any,
) -> Path:
    """Site prepared, the store clip rendered, and the worker's config for site A's camera."""
    await prepare_site(api_client, dev, world)
    clip = tmp_path / "store.avi"
    store_clip(clip, detector)
    return edge_config(
        tmp_path / "edge.yaml",
        tenant_id=world.tenant_id,
        site_id=world.site_a,
        cameras=[{"id": world.camera_a, "name": "entrance", "source": str(clip),
                  "start_time": START, **camera}],
        base_url=dev.base,
        api_key=world.worker_key,
        models_dir=models_dir,
        queue_dir=tmp_path / "queue",
        exit_when_done=True,
    )  # fmt: skip


def run_worker(config: Path, log: Path, timeout_s: float = 300) -> None:
    proc = start_worker(config, log)
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"worker did not finish:\n{log.read_text()[-4000:]}") from None
    assert code == 0, log.read_text()[-4000:]


async def test_synthetic_clip_gives_exactly_the_expected_events_and_visits(
    api_client: httpx.AsyncClient,
    dev_server: DevServer,
    world: TenantWorld,
    db: Database,
    detector: Detector,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    config = await store_setup(api_client, dev_server, world, detector, models_dir, tmp_path)
    log = tmp_path / "worker.log"
    run_worker(config, log)

    counts = await server_counts(db, world)
    decisions = [r["decision"] for r in counts["sightings"]]
    assert decisions == [
        "new_customer", "new_customer", "new_customer", "returning_customer", "returning_customer",
    ], log.read_text()[-4000:]  # fmt: skip
    assert counts["customers"] == 3
    visits = counts["visits"]
    assert [v["is_new"] for v in visits] == [True, True, True, False]
    assert sorted(v["sighting_count"] for v in visits) == [1, 1, 1, 2]
    # Blair's two passes are one customer with two visits; Chretien's two passes one visit
    by_customer: dict[Any, int] = {}
    for v in visits:
        by_customer[v["customer_id"]] = by_customer.get(v["customer_id"], 0) + 1
    assert sorted(by_customer.values()) == [1, 1, 2]
    # every pass came with its snapshot, below this camera's prefix
    prefix = f"{world.tenant_id}/{world.site_a}/{world.camera_a}/2026-11-20/"
    assert all(str(r["snapshot_key"]).startswith(prefix) for r in counts["sightings"])
    text = log.read_text()
    assert "staff track" in text and text.count("delivered (200)") == 5
    # ingest announced each visit on the Broker (K_SINK); `aggregate` kept the statistics
    tenant = uuid.UUID(world.tenant_id)
    deadline = time.monotonic() + 20
    while True:
        async with db.transaction(DbScope(tenant)) as conn:
            counted = await conn.fetchval(
                "SELECT coalesce(sum(visits), 0) FROM visit_stats_hourly WHERE site_id = $1",
                uuid.UUID(world.site_a),
            )
        if counted == 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert counted == 4
    queue = sqlite3.connect(tmp_path / "queue" / "queue.sqlite3")
    assert queue.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert queue.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0


async def test_outage_events_wait_on_disk_and_are_replayed_exactly_once(
    api_client: httpx.AsyncClient,
    dev_server: DevServer,
    world: TenantWorld,
    db: Database,
    detector: Detector,
    models_dir: Path,
    tmp_path: Path,
) -> None:
    config = await store_setup(
        api_client, dev_server, world, detector, models_dir, tmp_path, realtime=True, fps=5
    )
    log = tmp_path / "worker.log"
    proc = start_worker(config, log)
    try:
        port = health_port(log)
        health = f"http://127.0.0.1:{port}/healthz"

        def first_delivered() -> bool:
            return "delivered (200)" in log.read_text()

        deadline = time.monotonic() + 90
        while not first_delivered():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        dev_server.stop()  # the functions go away mid-run
        deadline = time.monotonic() + 120
        buffered = 0
        while buffered < 2:  # the chretien passes end while the server is down
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(1)
            state = (await asyncio.to_thread(httpx.get, health, timeout=5)).json()
            buffered = int(state["queue"].get("depth") or 0)
        assert state["status"] == "ok" or "no successful upload" not in str(state["problems"])
        assert state["uploader"]["retries"] > 0
        dev_server.start()
        code = proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not dev_server.up():
            dev_server.start()
    assert code == 0, log.read_text()[-4000:]
    counts = await server_counts(db, world)
    assert len(counts["sightings"]) == 5 and len({r["ce_id"] for r in counts["sightings"]}) == 5
    assert len(counts["visits"]) == 4 and counts["customers"] == 3
    assert "not delivered" in log.read_text()
    assert "batch of " in log.read_text()  # the backlog went back as a CloudEvents batch
