"""The recognition half of `make demo`: a staff member enrolled over HTTP, a synthetic visitor clip
from face photos that ship inside registry packages (scikit-image's astronaut: Eileen Collins;
matplotlib's sample Grace Hopper; both public domain), the edge worker on that clip against the
running functions, and the visits the server counted.

``DEMO_SOURCE`` (an RTSP URL, ``usb:0``, a video file or an image folder) runs the worker on a real
camera instead; it then runs until Ctrl+C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import yaml

from visitlens.adapters.endpoints import resolve
from visitlens.adapters.onnx_models import load_models
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.errors import StackError
from visitlens.ports import DbScope
from visitlens.vision.types import Image, as_image

CLIP_START = "2026-11-20T10:00:00+00:00"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def packaged_faces() -> dict[str, Image]:
    """Face photos that ship inside installed registry packages (nothing is downloaded)."""
    import matplotlib
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(hopper))
    if image is None:
        raise StackError(f"{hopper} missing: reinstall matplotlib (make install)")
    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # type: ignore[no-untyped-call]
    return {"collins": as_image(astronaut), "hopper": as_image(image)}


def run_edge(settings: Settings, base: str, world: dict[str, Any]) -> None:
    from visitlens_edge.synthetic import Pass, render

    tenant, site, camera = world["tenant_id"], world["site_id"], world["camera_id"]
    root = {"authorization": f"Bearer {world['root']}"}
    faces = packaged_faces()
    _say("5. staff enrolment and the edge worker")
    with httpx.Client(base_url=base, timeout=120) as http:
        response = http.patch(
            f"/v1/tenants/{tenant}/sites/{site}", headers=root, json={"visit_window_s": 60}
        )
        response.raise_for_status()
        staff = http.post(
            f"/v1/staff/{tenant}", headers=root, json={"display_name": "Grace", "site_id": site}
        )
        staff.raise_for_status()
        _, jpeg = cv2.imencode(".jpg", faces["hopper"])
        photo = http.post(
            f"/v1/staff/{tenant}/{staff.json()['id']}/images",
            headers=root,
            files={"image": ("grace.jpg", jpeg.tobytes(), "image/jpeg")},
        )
        if photo.is_error:
            raise StackError(f"staff enrolment failed: {photo.status_code} {photo.text[:300]}")
        _say(f"   staff 'Grace' enrolled (face quality {photo.json()['quality']:.2f})")

    work = (settings.data_dir / "demo-edge").resolve()
    work.mkdir(parents=True, exist_ok=True)
    (work / "edge.log").unlink(missing_ok=True)  # this run's lines only (its counts are read back)
    source = os.environ.get("DEMO_SOURCE")
    camera_config: dict[str, Any] = {"id": camera, "name": "entrance"}
    if source:
        camera_config["source"] = source
        _say(f"   camera source: {source} (Ctrl+C stops the worker)")
    else:
        detector, _ = load_models(settings)
        clip = work / "visitors.avi"
        mirrored = as_image(np.ascontiguousarray(faces["collins"][:, ::-1]))
        passes = [
            Pass("collins", faces["collins"], 2.0),
            Pass("grace (staff)", faces["hopper"], 12.0, lane=1, leftwards=True),
            Pass("collins", mirrored, 80.0, lane=1),
        ]
        frames = render(clip, passes, detector, fps=10, length_s=88)
        camera_config.update(source=str(clip), start_time=CLIP_START)
        _say(
            f"   synthetic clip: {frames} frames at 640x480: Collins passes at 0:02 and 1:20 "
            "(visit window 60 s), Grace (staff) at 0:12"
        )
    key_file = work / "worker.key"
    key_file.write_text(world["api_key"])
    key_file.chmod(0o600)
    config = {
        "tenant_id": tenant,
        "site_id": site,
        "cameras": [camera_config],
        "api": {"base_url": base, "credentials_file": str(key_file)},
        "models_dir": str(settings.models_dir.resolve()),
        "queue": {"dir": str(work / "queue")},
        "health": {"port": 0},
        "log": {"file": str(work / "edge.log")},
        "exit_when_done": not source,
    }
    config_path = work / "edge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    _say(f"   visitlens-edge run --config {config_path}")
    argv = [sys.executable, "-m", "visitlens_edge", "run", "--config", str(config_path)]
    # Ctrl+C reaches the worker (same process group), which stops gracefully; the demo goes on.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = subprocess.call(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    finally:
        signal.signal(signal.SIGINT, previous)
    if code != 0:
        raise StackError(f"the edge worker failed (exit {code}); see {work / 'edge.log'}")
    text = (work / "edge.log").read_text(errors="replace")
    asyncio.run(_print_results(settings, uuid.UUID(tenant), uuid.UUID(site), text))
    if not source:
        _print_report(base, root, tenant)


def _print_report(base: str, headers: dict[str, str], tenant: str) -> None:
    """The same day through the report API (statistics kept by the aggregate function)."""
    day = CLIP_START[:10]
    params = {"start": day, "end": day, "granularity": "day"}
    deadline = time.monotonic() + 15
    with httpx.Client(base_url=base, timeout=30) as http:
        while True:  # visit.recorded reaches `aggregate` through the broker, asynchronously
            report = http.get(
                f"/v1/tenants/{tenant}/reports/visits", headers=headers, params=params
            )
            report.raise_for_status()
            totals = report.json()["totals"]
            if totals["visits"] >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    _say(
        f"7. report API, {day} (site's local day): {totals['visits']} visits, "
        f"{totals['new_visits']} new, {totals['returning_visits']} returning, "
        f"{totals['unique_visitors']} distinct visitors, average dwell {totals['avg_dwell_s']} s"
    )


async def _print_results(settings: Settings, tenant: uuid.UUID, site: uuid.UUID, text: str) -> None:
    _say(
        f"   the worker sent {text.count('delivered (')} events; "
        f"{text.count('staff track')} staff pass kept on the device"
    )
    database = Database(resolve(settings).app_dsn, settings.database)
    try:
        async with database.transaction(DbScope(tenant)) as conn:
            visits = await conn.fetch(
                "SELECT v.started_at, v.ended_at, v.is_new, v.sighting_count, v.customer_id "
                "FROM visits v WHERE v.site_id = $1 ORDER BY v.started_at",
                site,
            )
            customers = await conn.fetchval("SELECT count(*) FROM customers")
    finally:
        await database.close()
    _say("6. visits the server counted")
    names: dict[uuid.UUID, str] = {}
    for v in visits:
        who = names.setdefault(v["customer_id"], f"customer {len(names) + 1}")
        dwell = (v["ended_at"] - v["started_at"]).total_seconds()
        kind = "new" if v["is_new"] else "returning"
        _say(
            f"   {v['started_at']:%Y-%m-%d %H:%M:%S} UTC  {who:<11} {kind:<9} "
            f"dwell {dwell:4.1f}s  sightings {v['sighting_count']}"
        )
    new = sum(1 for v in visits if v["is_new"])
    _say(
        f"   totals: {len(visits)} visits ({new} new, {len(visits) - new} returning) by "
        f"{customers} customers; staff excluded"
    )
