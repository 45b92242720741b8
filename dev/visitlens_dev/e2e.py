"""`make e2e`: the whole path once, on one machine, with every artifact kept.

A synthetic RTSP camera (GStreamer's RTSP server playing a scripted clip once) → the edge worker
→ the functions behind the local gateway (metrics on) → PostgreSQL, Milvus, S3 → the report API →
the web console in headless Chromium. The clip: a visitor passes at 0:02 and again at 1:20 (visit
window 60 s) and an enrolled staff member at 0:12, so the platform must count exactly two visits,
one new and one returning, and no staff. Exit 0 only if the report API and the console both show
that. Artifacts under one folder: logs (stack, functions, edge, RTSP, browser), report.json, the
metrics scrape of every function, the console's screenshot, summary.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import httpx
import numpy as np
import yaml

from visitlens.adapters.model_prep import prepare
from visitlens.adapters.onnx_models import load_models
from visitlens.config import MetricsSettings, Settings
from visitlens.errors import StackError
from visitlens.vision.types import as_image
from visitlens.wiring import create_system_admin
from visitlens_dev.demo import ADMIN_EMAIL, _walkthrough
from visitlens_dev.edge_demo import packaged_faces
from visitlens_dev.runtime.runner import function_env, metrics_ports_of
from visitlens_dev.runtime.spec import discover
from visitlens_dev.stack.ephemeral import consecutive_free_ports, ephemeral_stack, start_in
from visitlens_dev.stack.processes import free_port, terminate, wait_until

REPO = Path(__file__).resolve().parents[2]
SCRIPTED = {"visits": 2, "new_visits": 1, "returning_visits": 1, "unique_visitors": 1}
TIMEZONE = "Europe/Berlin"
CLIP_S = 88


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_e2e(artifacts: Path) -> int:
    started = time.monotonic()
    if artifacts.exists():
        shutil.rmtree(artifacts)
    (artifacts / "logs").mkdir(parents=True)
    summary: dict[str, Any] = {"scripted": SCRIPTED}
    with ephemeral_stack(artifacts / "stack") as stack:
        settings = stack.model_copy(
            update={
                "metrics": MetricsSettings(
                    port=consecutive_free_ports(len(discover()), start_in(26000, 1000, 10))
                )
            }
        )
        _say(f"1. embedded stack under {artifacts / 'stack'}; models")
        prepare(settings.models_dir)
        dev = _start_dev(settings, artifacts)
        base = f"http://{settings.stack.host}:{settings.stack.gateway_port}"
        try:
            wait_until("gateway", lambda: _ok(base + "/healthz"), timeout_s=90, pid=dev,
                       log_path=artifacts / "logs" / "dev.log")  # fmt: skip
            password = os.urandom(12).hex()
            import asyncio

            asyncio.run(create_system_admin(settings, ADMIN_EMAIL, password))
            world = _walkthrough(base, password)
            owner = _tenant_admin(base, world)
            _say("2. staff enrolled; the scripted clip on a synthetic RTSP camera")
            frames = _clip(settings, base, world, artifacts)
            rtsp, url = _rtsp(frames, artifacts)
            try:
                _say(f"3. visitlens-edge on {url} (the clip plays once: {CLIP_S} s)")
                _run_edge(settings, base, world, url, artifacts)
            finally:
                terminate("rtsp server", rtsp.pid)
            totals = _report(base, world, artifacts)
            summary["counted"] = {k: totals[k] for k in SCRIPTED}
            _say(f"4. report API: {summary['counted']}")
            summary["metrics"] = _scrape(settings, artifacts)
            summary["console"] = _console(base, owner, totals, artifacts)
        finally:
            terminate("visitlens dev", dev)
            for log in (settings.data_dir / "logs").glob("*.log"):
                shutil.copy(log, artifacts / "logs" / log.name)
    decisions = summary.get("metrics", {})
    summary["ok"] = (
        summary.get("counted") == SCRIPTED
        and summary.get("console") == "shown"
        # the functions' own counters agree: one new and one returning customer decided
        and decisions.get("new_customer", 0) >= 1
        and decisions.get("returning_customer", 0) >= 1
    )
    summary["seconds"] = round(time.monotonic() - started, 1)
    (artifacts / "summary.json").write_text(json.dumps(summary, indent=2))
    _say(f"e2e {'passed' if summary['ok'] else 'FAILED'} in {summary['seconds']} s; {artifacts}")
    return 0 if summary["ok"] else 1


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _start_dev(settings: Settings, artifacts: Path) -> int:
    env = {
        **function_env(settings),
        "VISITLENS_STACK__GATEWAY_PORT": str(settings.stack.gateway_port),
        "VISITLENS_STACK__FUNCTION_PORT_BASE": str(settings.stack.function_port_base),
        "VISITLENS_MODELS__DIR": str(settings.models_dir.resolve()),
        "VISITLENS_METRICS__PORT": str(settings.metrics.port),
    }
    with (artifacts / "logs" / "dev.log").open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "visitlens.cli", "dev"], env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return proc.pid


def _tenant_admin(base: str, world: dict[str, Any]) -> dict[str, str]:
    email, password = f"owner@{world['slug']}.example.com", os.urandom(12).hex()
    root = {"authorization": f"Bearer {world['root']}"}
    t = f"{base}/v1/tenants/{world['tenant_id']}"
    httpx.post(f"{t}/users", headers=root, timeout=30,
               json={"email": email, "password": password, "role": "tenant_admin"}).raise_for_status()  # fmt: skip
    httpx.patch(f"{t}/sites/{world['site_id']}", headers=root, timeout=30,
                json={"visit_window_s": 60, "timezone": TIMEZONE}).raise_for_status()  # fmt: skip
    return {"email": email, "password": password}


def _clip(settings: Settings, base: str, world: dict[str, Any], artifacts: Path) -> Path:
    """Enrol the staff member; render the scripted clip as JPEG frames for the RTSP server."""
    from visitlens_edge.synthetic import Pass, render, to_frames

    faces = packaged_faces()
    root = {"authorization": f"Bearer {world['root']}"}
    with httpx.Client(base_url=base, timeout=120) as http:
        staff = http.post(f"/v1/staff/{world['tenant_id']}", headers=root,
                          json={"display_name": "Grace", "site_id": world["site_id"]})  # fmt: skip
        staff.raise_for_status()
        _, jpeg = cv2.imencode(".jpg", faces["hopper"])
        http.post(f"/v1/staff/{world['tenant_id']}/{staff.json()['id']}/images", headers=root,
                  files={"image": ("grace.jpg", jpeg.tobytes(), "image/jpeg")}).raise_for_status()  # fmt: skip
    detector, _ = load_models(settings)
    mirrored = as_image(np.ascontiguousarray(faces["collins"][:, ::-1]))
    passes = [
        Pass("collins", faces["collins"], 2.0),
        Pass("grace (staff)", faces["hopper"], 12.0, lane=1, leftwards=True),
        Pass("collins", mirrored, 80.0, lane=1),
    ]
    clip = artifacts / "clip.avi"
    render(clip, passes, detector, fps=10, length_s=CLIP_S)
    frames = artifacts / "frames"
    n = to_frames(clip, frames)
    if n < CLIP_S * 10 - 5:
        raise StackError(f"the clip has {n} frames, expected {CLIP_S * 10}")
    return frames


def start_rtsp(
    frames: Path, port: int, *, once: bool, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """GStreamer's RTSP server (scripts/rtsp_server.py, Debian's python3-gi) playing a folder of
    frames at rtsp://127.0.0.1:PORT/store, once or in a loop; returns when it listens."""
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        raise StackError("Debian's python3 with python3-gi is needed (make system-deps)")
    argv = [python, str(REPO / "scripts" / "rtsp_server.py"), "--frames", str(frames),
            "--port", str(port), "--fps", "10", *(["--once"] if once else [])]  # fmt: skip
    errors = log.open("ab") if log is not None else subprocess.DEVNULL
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, start_new_session=True)  # noqa: S603
    assert server.stdout is not None
    if not server.stdout.readline().decode().startswith("rtsp://"):
        raise StackError("the GStreamer RTSP server did not start (make system-deps)")
    return server


def _rtsp(frames: Path, artifacts: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = start_rtsp(frames, port, once=True, log=artifacts / "logs" / "rtsp.log")
    return server, f"rtsp://127.0.0.1:{port}/store"


def _run_edge(
    settings: Settings, base: str, world: dict[str, Any], url: str, artifacts: Path
) -> None:
    work = artifacts / "edge"
    work.mkdir()
    key = work / "worker.key"
    key.write_text(world["api_key"])
    key.chmod(0o600)
    health = free_port()
    config = {
        "tenant_id": world["tenant_id"], "site_id": world["site_id"],
        "cameras": [{"id": world["camera_id"], "name": "entrance", "source": url}],
        "api": {"base_url": base, "credentials_file": str(key)},
        "models_dir": str(settings.models_dir.resolve()),
        "queue": {"dir": str(work / "queue")},
        "health": {"port": health},
        "log": {"file": str(artifacts / "logs" / "edge.log")},
    }  # fmt: skip
    (work / "edge.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "visitlens_edge", "run", "--config", str(work / "edge.yaml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        # the clip plays in real time from the edge's first frame: its start-up (models, the staff
        # gallery's first sync) takes longer on a loaded machine and must not cut the clip short
        started = time.monotonic() + 60
        while time.monotonic() < started and not _frames_read(health):
            time.sleep(0.5)
        time.sleep(CLIP_S + 5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # then until its queue has drained
            try:
                state = httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=2).json()
                if not state["queue"].get("depth"):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(1)
    finally:
        terminate("visitlens-edge", proc.pid, timeout_s=20)


def _frames_read(health: int) -> int:
    try:
        state = httpx.get(f"http://127.0.0.1:{health}/healthz", timeout=2).json()
        return sum(int(c.get("frames_read") or 0) for c in state["cameras"].values())
    except (httpx.HTTPError, ValueError, KeyError, AttributeError):
        return 0


def _report(base: str, world: dict[str, Any], artifacts: Path) -> dict[str, Any]:
    day = datetime.now(ZoneInfo(TIMEZONE)).date().isoformat()
    headers = {"authorization": f"Bearer {world['root']}"}
    params = {"start": day, "end": day, "granularity": "hour"}
    deadline = time.monotonic() + 90
    while True:  # visit.recorded reaches aggregate through the Broker; the minutely tick too
        report = httpx.get(f"{base}/v1/tenants/{world['tenant_id']}/reports/visits",
                           headers=headers, params=params, timeout=30)  # fmt: skip
        report.raise_for_status()
        body = report.json()
        if body["freshness"]["pending_hours"] == 0 and body["totals"]["visits"] >= 1:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    (artifacts / "report.json").write_text(json.dumps(body, indent=2))
    totals: dict[str, Any] = body["totals"]
    return totals


def _scrape(settings: Settings, artifacts: Path) -> dict[str, float]:
    """Every function's /metrics into metrics/<function>.txt; the identity decisions counted."""
    out = artifacts / "metrics"
    out.mkdir()
    decisions: dict[str, float] = {}
    host = settings.stack.host
    for index, (name, port) in enumerate(metrics_ports_of(settings, discover()).items()):
        # a function serves /metrics once it has served a request (as a readiness probe does)
        httpx.get(f"http://{host}:{settings.stack.function_port_base + index}/readyz", timeout=30)
        text = httpx.get(f"http://{host}:{port}/metrics", timeout=5).text
        (out / f"{name}.txt").write_text(text)
        for line in text.splitlines():
            if line.startswith("visitlens_match_decisions_total{"):
                outcome = line.split('outcome="')[1].split('"')[0]
                decisions[outcome] = decisions.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return decisions


def _console(base: str, owner: dict[str, str], totals: dict[str, Any], artifacts: Path) -> str:
    """The console in headless Chromium shows today's visits as the API counted them."""
    env = {
        **os.environ, "VISITLENS_E2E_BASE": base, "VISITLENS_E2E_EMAIL": owner["email"],
        "VISITLENS_E2E_PASSWORD": owner["password"], "VISITLENS_E2E_VISITS": str(totals["visits"]),
        "VISITLENS_E2E_SCREENSHOTS": str(artifacts), "CHROMIUM": "/usr/bin/chromium",
        "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1",
    }  # fmt: skip
    run = subprocess.run(
        ["npx", "playwright", "test", "--config", "playwright.demo.config.ts"],  # noqa: S607
        cwd=REPO / "web", env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    (artifacts / "logs" / "console.log").write_text(run.stdout + run.stderr)
    return "shown" if run.returncode == 0 else "not shown"
