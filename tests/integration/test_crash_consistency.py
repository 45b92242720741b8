"""Crash consistency of ingest: 400 distinct passes from 8 concurrent senders, the ingest worker
killed with SIGKILL mid-stream and started again, the unanswered passes replayed together with 50
answered ones: exactly 400 sightings and 400 visits — none lost, none doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import from_http

from tests.conftest import REPO, TenantWorld, make_world
from tests.functions.test_ingest import T0, person, track_event
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.ports import DbScope
from visitlens_dev.stack.processes import free_port, tcp_open, wait_until

pytestmark = pytest.mark.integration

PASSES = 400
SENDERS = 8
KILL_AFTER = 120


def start_ingest(port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "functions_framework", "--target", "ingest",
            "--source", str(REPO / "functions" / "ingest" / "main.py"),
            "--signature-type", "http", "--asgi", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the "pod" is killed whole
        )  # fmt: skip
    wait_until("ingest", lambda: tcp_open("127.0.0.1", port), timeout_s=60, pid=proc.pid,
               log_path=log)  # fmt: skip
    return proc


def encode(event: dict[str, Any], token: str) -> tuple[dict[str, str], bytes]:
    import json

    ce = from_http({"content-type": "application/cloudevents+json"}, json.dumps(event).encode())
    headers, body = to_binary(ce)
    return {**dict(headers), "authorization": f"Bearer {token}"}, body


async def test_kill_9_mid_stream_then_replay_counts_every_pass_once(
    function_environment: None,
    db: Database,
    api_client: httpx.AsyncClient,
    stack_settings: Settings,
) -> None:
    world: TenantWorld = await make_world(db, api_client)
    events = [
        track_event(world, person(), T0 + timedelta(seconds=30 * i), seconds=5.0)
        for i in range(PASSES)
    ]
    port = free_port()
    log = stack_settings.data_dir / "logs" / "crash-ingest.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_ingest(port, log)
    answered: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(PASSES):
        queue.put_nowait(i)
    killed = asyncio.Event()

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty() and not killed.is_set():
            i = queue.get_nowait()
            headers, body = encode(events[i], world.worker_a)
            try:
                response = await client.post("/v1/events", headers=headers, content=body)
            except httpx.HTTPError:
                continue  # unanswered: replayed below
            if response.status_code == 200:
                answered.add(i)
                if len(answered) >= KILL_AFTER and not killed.is_set():
                    killed.set()
                    # mid-stream, other requests in flight; the whole group, as a pod dies (a
                    # worker process of the server would otherwise outlive the test)
                    os.killpg(proc.pid, signal.SIGKILL)

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(sender(client) for _ in range(SENDERS)))
    proc.wait(timeout=10)
    assert killed.is_set() and KILL_AFTER <= len(answered) < PASSES

    proc = start_ingest(port, log)  # the platform restarts the worker
    try:
        unanswered = [i for i in range(PASSES) if i not in answered]
        duplicates = sorted(answered)[:50]
        replay: asyncio.Queue[int] = asyncio.Queue()
        for i in unanswered + duplicates:
            replay.put_nowait(i)
        statuses: dict[int, int] = {}

        async def replayer(client: httpx.AsyncClient) -> None:
            while not replay.empty():
                i = replay.get_nowait()
                headers, body = encode(events[i], world.worker_a)
                statuses[i] = (
                    await client.post("/v1/events", headers=headers, content=body)
                ).status_code

        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            await asyncio.gather(*(replayer(client) for _ in range(SENDERS)))
        assert set(statuses.values()) == {200}, statuses
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        sightings = await conn.fetchval("SELECT count(*) FROM sightings")
        distinct = await conn.fetchval("SELECT count(DISTINCT ce_id) FROM sightings")
        visits = await conn.fetchval("SELECT count(*) FROM visits")
        visit_sightings = await conn.fetchval("SELECT sum(sighting_count) FROM visits")
    assert (sightings, distinct, visits, visit_sightings) == (PASSES, PASSES, PASSES, PASSES)
