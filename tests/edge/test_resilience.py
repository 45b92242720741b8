"""The worker keeps running and reports: an RTSP camera (GStreamer's RTSP server from Debian
packages) that dies and comes back, unreadable frames in a folder, and a queue whose disk is full.
The API is unreachable in these tests on purpose: events stay queued on disk."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.edge.conftest import edge_config, health_port, lfw, start_worker
from visitlens.vision.pipeline import Detector
from visitlens_dev.e2e import start_rtsp
from visitlens_dev.stack.processes import free_port, terminate
from visitlens_edge.queue import DiskQueue, QueueFull
from visitlens_edge.synthetic import Pass, render, to_frames

pytestmark = pytest.mark.integration
TENANT = "0b7c1a52-3d1e-4c57-9a7e-2f1d8e6b4a10"
SITE = "5e2a9c41-7b3d-4f0e-8c6a-1d9b7e3f2a55"
CAMERA = "9c4e1b7a-2d5f-4a8e-b1c3-6e7f8a9b0c21"
NOWHERE = "http://127.0.0.1:9"  # nothing listens: deliveries fail and are retried


def frames_dir(tmp_path: Path, detector: Detector) -> Path:
    clip = tmp_path / "clip.avi"
    render(clip, [Pass("blair", lfw("Tony_Blair", 1), 0.5, duration_s=6.0)], detector, length_s=7)
    folder = tmp_path / "frames"
    to_frames(clip, folder, quality=95)
    return folder


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def health_until(
    url: str, check: Callable[[dict[str, Any]], bool], within_s: float, proc: Any, log: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, tail(log)
        try:
            response = await asyncio.to_thread(httpx.get, url, timeout=5)
            state = response.json()
            if check(state):
                return state
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"health never reached the expected state: {state}\n{tail(log)}")


def config(tmp_path: Path, models_dir: Path, source: str, **extra: Any) -> Path:
    return edge_config(
        tmp_path / "edge.yaml",
        tenant_id=TENANT,
        site_id=SITE,
        cameras=[{"id": CAMERA, "name": "door", "source": source, "fps": 5,
                  "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "open_timeout_s": 3}],
        base_url=NOWHERE,
        api_key="vlk_unused",
        models_dir=models_dir,
        queue_dir=tmp_path / "queue",
        staff={"enabled": False},
        **extra,
    )  # fmt: skip


async def test_rtsp_stream_is_read_and_a_dead_stream_reconnects(
    tmp_path: Path, detector: Detector, models_dir: Path
) -> None:
    folder = frames_dir(tmp_path, detector)
    port = free_port()

    def rtsp() -> subprocess.Popen[bytes]:
        return start_rtsp(folder, port, once=False)

    server = rtsp()
    log = tmp_path / "worker.log"
    proc = start_worker(config(tmp_path, models_dir, f"rtsp://127.0.0.1:{port}/store"), log)
    try:
        url = f"http://127.0.0.1:{health_port(log)}/healthz"
        state = await health_until(
            url,
            lambda s: s["cameras"]["door"]["state"] == "running"
            and (s["cameras"]["door"]["detections"] or 0) > 0,
            60, proc, log,
        )  # fmt: skip
        assert state["cameras"]["door"]["fps"] > 0
        terminate("rtsp server", server.pid)  # the camera dies
        state = await health_until(
            url, lambda s: s["cameras"]["door"]["state"] == "reconnecting", 60, proc, log
        )
        assert state["status"] == "degraded" and any("door" in p for p in state["problems"])
        server = rtsp()  # and comes back
        before = state["cameras"]["door"]["frames_processed"] or 0
        await health_until(
            url,
            lambda s: s["cameras"]["door"]["state"] == "running"
            and (s["cameras"]["door"]["frames_processed"] or 0) > before,
            60, proc, log,
        )  # fmt: skip
        metrics = (await asyncio.to_thread(httpx.get, url.replace("healthz", "metrics"))).text
        assert 'visitlens_edge_reconnects_total{camera="door"}' in metrics
        assert 'visitlens_edge_camera_up{camera="door"} 1.0' in metrics
    finally:
        terminate("worker", proc.pid, timeout_s=30)
        terminate("rtsp server", server.pid)
    assert "could not open the stream" in log.read_text() or "stopped delivering" in log.read_text()


async def test_bad_frames_are_counted_and_skipped(
    tmp_path: Path, detector: Detector, models_dir: Path
) -> None:
    folder = frames_dir(tmp_path, detector)
    (folder / "frame-00010.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (folder / "frame-00020.jpg").write_bytes(b"")
    (folder / "frame-00030.png").write_text("not an image")
    log = tmp_path / "worker.log"
    proc = start_worker(config(tmp_path, models_dir, str(folder)), log)
    try:
        url = f"http://127.0.0.1:{health_port(log)}/healthz"
        state = await health_until(
            url, lambda s: s["cameras"]["door"]["state"] == "ended", 90, proc, log
        )
    finally:
        terminate("worker", proc.pid, timeout_s=30)
    camera = state["cameras"]["door"]
    assert camera["bad_frames"] == 3 and camera["processing_errors"] == 0
    assert camera["tracks_sent"] >= 1  # the pass still became an event, queued on disk
    queue = DiskQueue(tmp_path / "queue", 2 * 1024**3, 8 * 1024**3)
    assert queue.stats().depth == camera["tracks_sent"]


async def test_full_disk_raises_the_alarm_and_the_worker_keeps_running(
    tmp_path: Path, detector: Detector, models_dir: Path
) -> None:
    limit = 1024 * 1024
    queue = DiskQueue(tmp_path / "queue", limit, limit)
    for size in (60_000, 4_000, 500):  # fill the queue to its hard limit, as a full disk would
        for i in range(1000):
            try:
                queue.put("door", {"id": f"old-{size}-{i}", "type": "t", "source": "s"},
                          {"blob": "x" * size})  # fmt: skip
            except QueueFull:
                break
    queue.close()
    folder = frames_dir(tmp_path, detector)
    log = tmp_path / "worker.log"
    cfg = config(
        tmp_path, models_dir, str(folder), queue={"dir": str(tmp_path / "queue"),
        "max_bytes": limit, "hard_limit_bytes": limit},
    )  # fmt: skip
    proc = start_worker(cfg, log)
    try:
        url = f"http://127.0.0.1:{health_port(log)}/healthz"
        state = await health_until(
            url, lambda s: (s["cameras"]["door"]["events_refused"] or 0) >= 1, 90, proc, log
        )
        assert state["status"] == "critical"
        assert any("queue full" in p for p in state["problems"])
        response = await asyncio.to_thread(httpx.get, url)
        assert response.status_code == 503
        assert proc.poll() is None  # still running
    finally:
        terminate("worker", proc.pid, timeout_s=30)
    assert "QUEUE FULL" in log.read_text()
