"""Dependencies restarted under load: while eight edge uploaders (the product's own queue and
uploader, one per camera) post unique passes through the local gateway, PostgreSQL, Milvus, the
object store, Redis and the gateway itself are stopped and started again in turn.

For each outage it records what the senders were answered (every status, and whether a 503
said Retry-After), what ``/readyz`` of the functions that use the dependency said while it was
down, and how long after the dependency was back the first pass was counted again; at the end,
whether every queued pass is in PostgreSQL exactly once and every queue drained. The fault
suite (``tests/faults``) asserts on the report; ``make bench`` records it as ``results.faults``.
Everything binds 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import cv2
import httpx
import numpy as np
import uvicorn

from visitlens.adapters.endpoints import resolve
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.ports import DbScope
from visitlens.wiring import create_system_admin
from visitlens_dev.runtime.gateway import Deployed, Gateway
from visitlens_dev.runtime.runner import local_issuer, running_functions
from visitlens_dev.stack import manager
from visitlens_dev.stack.ephemeral import consecutive_free_ports, start_in
from visitlens_dev.stack.processes import spawn, tcp_open, terminate, wait_until
from visitlens_edge.config import EdgeSettings
from visitlens_edge.queue import DiskQueue
from visitlens_edge.uploader import Uploader

logger = logging.getLogger(__name__)

SENDERS = 8
PASSES_PER_S = 2.0
"""Each sender's rate: 16 passes a second in all."""
OUTAGE_S = 6.0
SETTLE_S = 4.0
RECOVERY_LIMIT_S = 30.0
DRAIN_LIMIT_S = 90.0
SNAPSHOT_EVERY = 4
"""Every fourth pass carries a snapshot (presigned upload to the object store)."""
PASSWORD = "fault-suite-password-1"  # noqa: S105 - a throw-away admin of a private stack
EXAMPLE = Path(__file__).resolve().parents[2] / "events" / "examples" / "face.detected.v2.json"
DEPENDENCIES = ("postgres", "milvus", "object_store", "redis", "gateway")
READINESS = {
    # which function's /readyz must name the dependency while it is down, and as what
    "postgres": ("ingest", "database", "failed"),
    "milvus": ("ingest", "gallery", "failed"),
    "object_store": ("api", "object_store", "failed"),
    "redis": ("api", "rate_limits", "degraded"),
}


@dataclass(slots=True)
class Answer:
    at: float
    method: str
    path: str
    status: int
    retry_after: bool


@dataclass(slots=True)
class Outage:
    dependency: str
    stopped_at: float = 0.0
    restarted_at: float = 0.0
    recovered_at: float | None = None
    readiness: dict[str, Any] = field(default_factory=dict)

    def report(self, answers: list[Answer]) -> dict[str, Any]:
        during = [a for a in answers if self.stopped_at <= a.at <= (self.recovered_at or a.at)]
        statuses = Counter(a.status for a in during)
        return {
            "outage_s": round(self.restarted_at - self.stopped_at, 2),
            "recovery_s": (
                round(self.recovered_at - self.restarted_at, 2)
                if self.recovered_at is not None
                else None
            ),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors_other_than_503": sum(
                n for s, n in statuses.items() if s >= 500 and s != 503
            ),
            "server_error_routes": sorted(
                {f"{a.status} {a.method} {a.path}" for a in during if a.status >= 500}
            ),
            "503_without_retry_after": sum(
                1 for a in during if a.status == 503 and not a.retry_after
            ),
            "readiness": self.readiness,
        }


class Redis:
    """A Redis server (Debian's redis-server) on a loopback port, restartable on that port."""

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is needed (make system-deps installs it)")
        self.binary = binary
        self.dir = data_dir
        # restarted on it: below the ephemeral range, from a random start (see ephemeral_settings)
        self.port = consecutive_free_ports(1, start_in(28000, 1000, 10))
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.dir)]  # fmt: skip
        self.pid = spawn("redis", argv, self.dir / "redis.log")
        wait_until("redis", lambda: tcp_open("127.0.0.1", self.port), timeout_s=20, pid=self.pid)

    def stop(self) -> None:
        terminate("redis", self.pid)
        self.pid = None


class GatewayThread:
    """The local gateway (Broker ingress, HTTP routing) served from a thread of this process,
    so that it can be stopped and started again while the function processes keep running."""

    def __init__(self, gateway: Gateway, port: int) -> None:
        self.gateway = gateway
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(self.gateway.app(), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on", server_header=False,
                                timeout_graceful_shutdown=2)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)
        self._thread.start()
        wait_until("gateway", lambda: tcp_open("127.0.0.1", self.port), timeout_s=20)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
        self._server = self._thread = None


@dataclass(slots=True)
class World:
    tenant_id: str
    site_id: str
    cameras: list[str]
    api_key: str


def _world(base: str, settings: Settings) -> World:
    """A tenant with one site and a camera per sender, and a worker key for all of them, made
    through the running platform."""
    from visitlens.config import load_settings

    email = f"fault-root-{uuid.uuid4().hex[:8]}@example.com"
    asyncio.run(create_system_admin(load_settings(), email, PASSWORD))
    with httpx.Client(base_url=base, timeout=60) as http:

        def call(method: str, path: str, token: str | None = None, **kw: Any) -> Any:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = http.request(method, path, headers=headers, **kw)
            if response.is_error:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
            return response.json()

        root = call("POST", "/v1/auth/token", json={
            "grant_type": "password", "email": email, "password": PASSWORD})["access_token"]  # fmt: skip
        slug = f"faults-{uuid.uuid4().hex[:8]}"
        tenant = call("POST", "/v1/tenants", root, json={"slug": slug, "name": slug})["id"]
        site = call("POST", f"/v1/tenants/{tenant}/sites", root,
                    json={"name": "Main", "timezone": "Europe/Berlin"})["id"]  # fmt: skip
        cameras = [
            call(
                "POST",
                f"/v1/tenants/{tenant}/sites/{site}/cameras",
                root,
                json={"name": f"door-{n}"},
            )["id"]
            for n in range(SENDERS)
        ]
        key = call("POST", f"/v1/tenants/{tenant}/api-keys", root, json={
            "name": "edge", "role": "worker", "site_ids": [site], "camera_ids": cameras})  # fmt: skip
    return World(tenant, site, cameras, key["api_key"])


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Senders:
    """Eight cameras' edge queues: a producer that appends a new pass (a new face) to each at
    :data:`PASSES_PER_S`, and eight of the edge's own uploaders delivering them through the
    gateway, retrying with its backoff; every HTTP answer they get is recorded."""

    def __init__(self, world: World, base: str, work_dir: Path) -> None:
        self.world = world
        self.base = base
        self.work_dir = work_dir
        self.answers: list[Answer] = []
        self.produced: list[tuple[float, str]] = []
        """(when, event id) of every pass queued."""
        self.uploaders: list[Uploader] = []
        self._lock = threading.Lock()
        self._producing = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._example = json.loads(EXAMPLE.read_text())["data"]
        self._rng = np.random.default_rng(2026)
        ok, jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))
        assert ok
        self._jpeg = jpeg.tobytes()

    def settings(self, n: int) -> EdgeSettings:
        return EdgeSettings.model_validate({
            "tenant_id": self.world.tenant_id, "site_id": self.world.site_id,
            "cameras": [{"id": self.world.cameras[n], "name": f"door-{n}",
                         "source": "rtsp://127.0.0.1:1/unused"}],
            "api": {"base_url": self.base, "api_key": self.world.api_key},
            "staff": {"enabled": False},
            "queue": {"dir": str(self.work_dir / f"queue-{n}")},
            "delivery": {"backoff_initial_s": 0.2, "backoff_max_s": 2.0, "timeout_s": 10.0,
                         "shutdown_grace_s": 0},
        })  # fmt: skip

    def _record(self, response: httpx.Response) -> None:
        answer = Answer(time.monotonic(), response.request.method, response.request.url.path,
                        response.status_code, "retry-after" in response.headers)  # fmt: skip
        with self._lock:
            self.answers.append(answer)

    def _upload(self, n: int, ready: threading.Barrier) -> None:
        uploader = Uploader(self.settings(n), self._stop, None)
        uploader.client.event_hooks["response"].append(self._record)
        with self._lock:
            self.uploaders.append(uploader)
        ready.wait()
        uploader.run()

    def _pass(self, camera: str, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
        end = datetime.now(UTC) - timedelta(seconds=1)
        start = end - timedelta(seconds=4)
        track = f"door:{number:06d}-{uuid.uuid4().hex[:6]}"
        vector = self._rng.normal(size=128)
        vector /= np.linalg.norm(vector)
        embedding = [round(float(x), 7) for x in vector]
        data = {**self._example, "tenant_id": self.world.tenant_id,
                "site_id": self.world.site_id, "camera_id": camera, "track_id": track,
                "first_seen": _iso(start), "last_seen": _iso(end), "snapshot_key": None}  # fmt: skip
        data["shots"] = [
            {**shot, "ts": _iso(start + timedelta(seconds=1 + i)), "embedding": embedding}
            for i, shot in enumerate(self._example["shots"])
        ]
        attributes = {
            "type": "com.visitlens.face.detected.v2",
            "source": f"/tenants/{self.world.tenant_id}/sites/{self.world.site_id}/cameras/"
                      f"{camera}",
            "id": track, "time": _iso(end), "datacontenttype": "application/json",
        }  # fmt: skip
        return attributes, data

    def _produce(self) -> None:
        queues = [
            DiskQueue(self.work_dir / f"queue-{n}", 256 * 1024**2, 512 * 1024**2)
            for n in range(SENDERS)
        ]
        number = 0
        try:
            while self._producing.is_set():
                for n, queue in enumerate(queues):
                    attributes, data = self._pass(self.world.cameras[n], number)
                    snapshot = None
                    if number % SNAPSHOT_EVERY == 0:
                        snapshot = (data["track_id"], data["last_seen"], self._jpeg)
                    queue.put(f"door-{n}", attributes, data, snapshot)
                    with self._lock:
                        self.produced.append((time.monotonic(), attributes["id"]))
                    number += 1
                self._stop.wait(1.0 / PASSES_PER_S)
        finally:
            for queue in queues:
                queue.close()

    def start(self) -> None:
        ready = threading.Barrier(SENDERS + 1)
        for n in range(SENDERS):
            thread = threading.Thread(target=self._upload, args=(n, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
        ready.wait()
        self._producing.set()
        producer = threading.Thread(target=self._produce, name="producer", daemon=True)
        producer.start()
        self._threads.append(producer)

    def stop_producing(self) -> None:
        self._producing.clear()

    def depth(self) -> int:
        """Passes still queued on the cameras' disks (read on connections of this thread)."""
        total = 0
        for n in range(SENDERS):
            queue = DiskQueue(self.work_dir / f"queue-{n}", 256 * 1024**2, 512 * 1024**2)
            try:
                total += queue.stats().depth
            finally:
                queue.close()
        return total

    def dead_letters(self) -> int:
        return sum(u.stats.dead_lettered for u in list(self.uploaders))

    def stop(self) -> None:
        self._producing.clear()
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def counted_since(self, since: float) -> float | None:
        """When the first pass answered 2xx after ``since`` was answered."""
        with self._lock:
            for answer in self.answers:
                if (answer.at >= since and answer.path.endswith("/v1/events")
                        and 200 <= answer.status < 300):  # fmt: skip
                    return answer.at
        return None


def _readiness(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url + "/readyz", timeout=10)
        return {**response.json(), "http_status": response.status_code}
    except (httpx.HTTPError, ValueError) as exc:
        return {"http_status": None, "error": type(exc).__name__}


async def _stored(settings: Settings, tenant_id: str) -> dict[str, Any]:
    database = Database(resolve(settings).app_dsn, settings.database)
    try:
        async with database.transaction(DbScope(uuid.UUID(tenant_id))) as conn:
            ids = [r["ce_id"] for r in await conn.fetch("SELECT ce_id FROM sightings")]
            customers = await conn.fetchval("SELECT count(*) FROM customers")
            visits = await conn.fetchval("SELECT count(*) FROM visits")
        return {"ids": ids, "customers": int(customers), "visits": int(visits)}
    finally:
        await database.close()


def run(settings: Settings, models_dir: Path, work_dir: Path,
        dependencies: tuple[str, ...] = DEPENDENCIES) -> dict[str, Any]:  # fmt: skip
    """Every outage of ``dependencies`` in turn on the running embedded stack of ``settings``;
    the report (see the module docstring)."""
    redis = Redis(work_dir / "redis")
    redis.start()
    gateway_port = consecutive_free_ports(1, start_in(29000, 1000, 10))
    settings = settings.model_copy(update={
        "stack": settings.stack.model_copy(update={"gateway_port": gateway_port})})  # fmt: skip
    env = {
        **resolve(settings).environment(),
        "VISITLENS_DATA_DIR": str(settings.data_dir.resolve()),
        "VISITLENS_ENV": "test",
        "VISITLENS_MODELS__DIR": str(models_dir),
        "VISITLENS_HTTP__RATE_LIMIT_STORAGE": redis.url,
        "VISITLENS_HTTP__RATE_LIMIT_LOGIN_ADDRESS": "100000/minute",
        "VISITLENS_HTTP__RATE_LIMIT_TENANT": "1000000/minute",
    }
    started = time.monotonic()
    outages: list[Outage] = []
    try:
        with patch.dict(os.environ, env), running_functions(settings) as deployed:
            urls = {d.spec.name: d.url for d in deployed}
            gateway = GatewayThread(
                Gateway(deployed, local_issuer(settings), web_dir=None), gateway_port
            )
            gateway.start()
            base = f"http://127.0.0.1:{gateway_port}"
            try:
                world = _world(base, settings)
                senders = Senders(world, base, work_dir)
                senders.start()
                try:
                    time.sleep(SETTLE_S)
                    for dependency in dependencies:
                        outages.append(_outage(dependency, settings, redis, gateway, senders,
                                               urls, deployed))  # fmt: skip
                        time.sleep(SETTLE_S)
                    senders.stop_producing()
                    deadline = time.monotonic() + DRAIN_LIMIT_S
                    while senders.depth() and time.monotonic() < deadline:
                        time.sleep(0.5)
                    left = senders.depth()
                    dead = senders.dead_letters()
                finally:
                    senders.stop()
                stored = asyncio.run(_stored(settings, world.tenant_id))
            finally:
                gateway.stop()
    finally:
        redis.stop()
    produced = [event_id for _, event_id in senders.produced]
    ids = Counter(stored["ids"])
    report: dict[str, Any] = {}
    for n, dep in enumerate(outages):  # the passes queued from this outage to the next one
        until = outages[n + 1].stopped_at if n + 1 < len(outages) else float("inf")
        window = [i for at, i in senders.produced if dep.stopped_at <= at < until]
        report[dep.dependency] = {
            **dep.report(senders.answers),
            "passes_queued": len(window),
            "lost": sum(1 for i in window if i not in ids),
            "doubled": sum(ids[i] - 1 for i in window if ids[i] > 1),
        }
    report["totals"] = {
        "passes": len(produced),
        "answers": len(senders.answers),
        "lost": len(set(produced) - set(ids)),
        "doubled": sum(n - 1 for n in ids.values() if n > 1)
        + max(0, stored["customers"] - len(ids))
        + max(0, stored["visits"] - len(ids)),
        "unknown": len(set(ids) - set(produced)),
        "left_in_queues": left,
        "dead_lettered": dead,
        "server_errors_other_than_503": sum(
            1 for a in senders.answers if a.status >= 500 and a.status != 503
        ),
        "503_without_retry_after": sum(
            1 for a in senders.answers if a.status == 503 and not a.retry_after
        ),
        "seconds": round(time.monotonic() - started, 1),
    }
    return report


def _outage(
    dependency: str,
    settings: Settings,
    redis: Redis,
    gateway: GatewayThread,
    senders: Senders,
    urls: dict[str, str],
    deployed: list[Deployed],
) -> Outage:
    stop, start = _controls(dependency, settings, redis, gateway)
    outage = Outage(dependency)
    logger.info("fault: stopping %s", dependency)
    outage.stopped_at = time.monotonic()
    stop()
    time.sleep(OUTAGE_S / 2)
    if dependency in READINESS:
        function, _, _ = READINESS[dependency]
        outage.readiness = _readiness(urls[function])
    time.sleep(OUTAGE_S / 2)
    start()
    outage.restarted_at = time.monotonic()
    logger.info("fault: %s is back", dependency)
    deadline = outage.restarted_at + RECOVERY_LIMIT_S
    while time.monotonic() < deadline:
        outage.recovered_at = senders.counted_since(outage.restarted_at)
        if outage.recovered_at is not None:
            break
        time.sleep(0.2)
    return outage


def _controls(
    dependency: str, settings: Settings, redis: Redis, gateway: GatewayThread
) -> tuple[Callable[[], None], Callable[[], None]]:
    """How to stop and start one dependency."""
    if dependency in ("postgres", "milvus", "object_store"):
        service = "s3" if dependency == "object_store" else dependency
        return (lambda: _stopped(manager.stop_one(settings, service), dependency, settings),
                lambda: _started(manager.up(settings)))  # fmt: skip
    if dependency == "redis":
        return redis.stop, redis.start
    if dependency == "gateway":
        return gateway.stop, gateway.start
    raise ValueError(f"unknown dependency {dependency!r}")


def _stopped(stopped: bool, dependency: str, settings: Settings) -> None:
    if not stopped:
        seen = {s.name: (s.healthy, s.detail) for s in manager.status(settings)}
        raise RuntimeError(f"{dependency} was not running to be stopped; the stack: {seen}")


def _started(_: object) -> None:
    return None


async def bench(settings: Settings) -> dict[str, Any]:
    """``make bench``'s ``results.faults``: the same outages on a private stack of their own (the
    run's shared stack is left alone), with this block's own provenance."""
    import sys
    import tempfile

    from visitlens_dev.bench.report import machine
    from visitlens_dev.stack.ephemeral import ephemeral_stack

    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="visitlens-faults-") as tmp:
        root = Path(tmp)
        with ephemeral_stack(root / "stack") as stack:
            report = await asyncio.to_thread(run, stack, settings.models_dir, root / "work")
    return {
        "description": f"each dependency stopped for {OUTAGE_S:.0f} s and started again while "
        f"{SENDERS} edge uploaders post {SENDERS * PASSES_PER_S:.0f} passes/s in all through the "
        "gateway (dev/visitlens_dev/faults.py)",
        **report,
        "provenance": {
            **machine(),
            "date": started.isoformat(timespec="seconds"),
            "command": " ".join(["python", "-m", "visitlens_dev.bench", *sys.argv[1:]]),
        },
    }
