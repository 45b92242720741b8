"""Ingest throughput on the embedded stack: events/s and p50/p95/p99 latency at concurrency 16, with
100k (and, with VISITLENS_BENCH_SIZES=100000,1000000, 1M) stored embeddings, against a real `functions-framework --asgi` ingest
process; and Milvus search latency at that size against a numpy brute-force search (the limit)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from visitlens.adapters.gallery import Gallery, GalleryRow
from visitlens.adapters.postgres import Database
from visitlens.bench.report import percentiles
from visitlens.config import Settings
from visitlens.identity.decisions import PersonKind
from visitlens.runtime.runner import function_env
from visitlens.runtime.spec import FUNCTIONS_DIR
from visitlens.stack.endpoints import resolve
from visitlens.stack.processes import free_port, spawn, tcp_open, terminate, wait_until
from visitlens.tenancy.scope import DbScope

CONCURRENCY = 16
EVENTS = 2000
VIEWS_PER_PERSON = 5
DIM = 128
SITES = 4
SEED_TARGET = {"events_per_s": 50, "p95_ms": 300}
TARGET = {"events_per_s": 500, "p95_ms": 100}


def _unit(rows: np.ndarray) -> np.ndarray:
    out: np.ndarray = (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)
    return out


async def _seed(settings: Settings, stored: int, rng: np.random.Generator) -> dict[str, Any]:
    """A tenant, its sites/cameras/worker keys, and ``stored`` gallery views of stored/5 people."""
    endpoints = resolve(settings)
    db = Database(endpoints.app_dsn, settings.database)
    people = stored // VIEWS_PER_PERSON
    async with db.transaction(DbScope(None, system_admin=True)) as conn:
        tenant = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ($1, 'bench') RETURNING id",
            f"bench-{uuid.uuid4().hex[:8]}",
        )
    scope = DbScope(tenant)
    sites, cameras = [], []
    async with db.transaction(scope) as conn:
        for i in range(SITES):
            site = await conn.fetchval(
                "INSERT INTO sites (tenant_id, name, timezone) VALUES ($1, $2, 'UTC') RETURNING id",
                tenant, f"site-{i}",
            )  # fmt: skip
            camera = await conn.fetchval(
                "INSERT INTO cameras (tenant_id, site_id, name) VALUES ($1, $2, 'door') RETURNING id",
                tenant, site,
            )  # fmt: skip
            sites.append(site)
            cameras.append(camera)
        now = datetime.now(UTC) - timedelta(days=30)
        person_ids = [uuid.uuid4() for _ in range(people)]
        # COPY is refused under row-level security: INSERT … SELECT FROM unnest() instead.
        await conn.execute(
            "INSERT INTO customers (id, tenant_id, first_seen_at, last_seen_at, visit_count) "
            "SELECT id, $2, $3, $3, 1 FROM unnest($1::uuid[]) AS id",
            person_ids,
            tenant,
            now,
        )
        identities = _unit(rng.normal(size=(people, DIM)))
        view_ids = [uuid.uuid4() for _ in range(people * VIEWS_PER_PERSON)]
        vectors = np.repeat(identities, VIEWS_PER_PERSON, axis=0)
        vectors = _unit(vectors + rng.normal(scale=0.35 / np.sqrt(DIM), size=vectors.shape))
        chunk = 20_000
        for lo in range(0, len(view_ids), chunk):
            hi = min(lo + chunk, len(view_ids))
            await conn.execute(
                "INSERT INTO person_embeddings (id, tenant_id, person_kind, customer_id, model_id,"
                " dim, quality, source, embedding) "
                "SELECT v, $2, 'customer', c, 'sface-2021dec', $4, 0.8, 'track', e "
                "FROM unnest($1::uuid[], $3::uuid[], $5::bytea[]) AS t(v, c, e)",
                view_ids[lo:hi],
                tenant,
                [person_ids[i // VIEWS_PER_PERSON] for i in range(lo, hi)],
                DIM,
                [vectors[i].astype("<f4").tobytes() for i in range(lo, hi)],
            )
    gallery = Gallery(endpoints.milvus_uri, settings.milvus, "sface-2021dec", DIM)
    started = time.monotonic()
    batch = 5000
    for lo in range(0, len(view_ids), batch):
        rows = [
            GalleryRow(view_ids[i], tenant, person_ids[i // VIEWS_PER_PERSON],
                       PersonKind.CUSTOMER, vectors[i])
            for i in range(lo, min(lo + batch, len(view_ids)))
        ]  # fmt: skip
        await gallery.insert(rows)
    await gallery.flush()
    insert_s = time.monotonic() - started
    # Worker keys (one per camera) → tokens, through the real api path would need the api
    # function; the bench signs with the stack's own key ring instead, as the api would.
    from visitlens.adapters.jwt_keys import KeyRing
    from visitlens.auth.principal import Principal, PrincipalKind, Role
    from visitlens.auth.service import AuthService

    keys = KeyRing.load(settings.keys_dir, settings.auth, settings.env)
    auth = AuthService(db, keys, settings.auth)
    tokens = [
        auth.issue_access(
            Principal(
                uuid.uuid4(),
                PrincipalKind.API_KEY,
                Role.WORKER,
                tenant,
                frozenset({sites[i]}),
                frozenset({cameras[i]}),
            )
        ).access_token
        for i in range(SITES)
    ]
    await db.close()
    return {
        "tenant": tenant, "sites": sites, "cameras": cameras, "tokens": tokens,
        "identities": identities, "gallery": gallery, "vectors": vectors,
        "insert_per_s": round(len(view_ids) / insert_s, 1),
    }  # fmt: skip


def _event(world: dict[str, Any], i: int, rng: np.random.Generator) -> tuple[dict[str, str], bytes]:
    site = i % SITES
    returning = i % 2 == 0
    if returning:
        base = world["identities"][rng.integers(len(world["identities"]))]
    else:
        base = _unit(rng.normal(size=DIM))
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC) + timedelta(seconds=i * 7)
    shots = []
    for s in range(2):
        noisy = _unit(base + rng.normal(scale=0.3 / np.sqrt(DIM), size=DIM))
        shots.append({"ts": (start + timedelta(seconds=s + 1)).isoformat(), "quality": 0.8,
                      "det_score": 0.9, "det_bbox": [100, 100, 80, 100],
                      "embedding": [round(float(x), 6) for x in noisy]})  # fmt: skip
    tenant, site_id, camera = world["tenant"], world["sites"][site], world["cameras"][site]
    data = {
        "tenant_id": str(tenant), "site_id": str(site_id), "camera_id": str(camera),
        "track_id": f"bench:{i}", "first_seen": start.isoformat(),
        "last_seen": (start + timedelta(seconds=3)).isoformat(), "model_id": "sface-2021dec",
        "dim": DIM, "frames_seen": 15, "shots": shots, "snapshot_key": None,
    }  # fmt: skip
    event = CloudEvent(
        {"type": "com.visitlens.face.detected.v2", "id": f"bench-{uuid.uuid4()}",
         "source": f"/tenants/{tenant}/sites/{site_id}/cameras/{camera}"},
        data,
    )  # fmt: skip
    headers, body = to_binary(event)
    headers = {**headers, "authorization": f"Bearer {world['tokens'][site]}"}
    return headers, body


async def _drive(url: str, requests: list[tuple[dict[str, str], bytes]]) -> dict[str, Any]:
    queue: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                headers, body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(url, headers=headers, content=body)
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return {
        "events": len(requests),
        "events_per_s": round(len(requests) / elapsed, 1),
        "latency": percentiles(latencies),
        "statuses": statuses,
    }


async def _search_vs_numpy(world: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    gallery: Gallery = world["gallery"]
    vectors: np.ndarray = world["vectors"]
    milvus_ms, numpy_ms = [], []
    for _ in range(200):
        query = _unit(rng.normal(size=(1, DIM)))
        started = time.perf_counter()
        await gallery.search(world["tenant"], query, 10)
        milvus_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = vectors @ query[0]
        top = np.argpartition(-scores, 10)[:10]
        _ = top[np.argsort(-scores[top])]
        numpy_ms.append((time.perf_counter() - started) * 1000)
    m, n = percentiles(milvus_ms), percentiles(numpy_ms)
    return {
        "milvus_search": m,
        "numpy_brute_force": n,
        "p95_ratio_milvus_over_numpy": round(m["p95_ms"] / n["p95_ms"], 2),
    }


async def _run(settings: Settings, stored: int) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    world = await _seed(settings, stored, rng)
    port = free_port()
    log = settings.data_dir / "logs" / "bench-ingest.log"
    env = {**function_env(settings), "VISITLENS_LOG_LEVEL": "WARNING"}
    argv = [sys.executable, "-m", "functions_framework", "--target", "ingest", "--source",
            str(Path(FUNCTIONS_DIR) / "ingest" / "main.py"), "--signature-type", "http", "--asgi",
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    pid = spawn("bench ingest", argv, log, env)
    try:
        wait_until(
            "ingest", lambda: tcp_open("127.0.0.1", port), timeout_s=60, pid=pid, log_path=log
        )
        url = f"http://127.0.0.1:{port}/"
        warm = [_event(world, i, rng) for i in range(64)]
        await _drive(url, warm)
        events = EVENTS if stored <= 100_000 else EVENTS // 4  # 1M: each Milvus Lite call is slow
        measured = await _drive(url, [_event(world, 1000 + i, rng) for i in range(events)])
    finally:
        terminate("bench ingest", pid)
    search = await _search_vs_numpy(world, rng)
    await world["gallery"].close()
    return {
        "stored_embeddings": stored,
        "gallery_insert_per_s": world["insert_per_s"],
        "ingest": measured,
        "search": search,
        "targets": {"seed": SEED_TARGET, "issue": TARGET, "concurrency": CONCURRENCY},
    }


async def run(settings: Settings) -> dict[str, Any]:
    # 100k by default; VISITLENS_BENCH_SIZES=100000,1000000 adds the (slow, ~10 min) 1M run.
    sizes = [int(s) for s in os.environ.get("VISITLENS_BENCH_SIZES", "100000").split(",")]
    results = {}
    for size in sizes:
        results[f"{size // 1000}k"] = await _run(settings, size)
    return {"description": " ".join((__doc__ or "").split()), "runs": results}
