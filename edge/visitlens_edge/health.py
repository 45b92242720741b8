"""``/healthz`` (JSON) and ``/metrics`` (Prometheus) of the edge worker, served by the supervisor
from the latest reports of its camera and uploader processes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from visitlens_edge import __version__

STALE_UPLOAD_S = 600.0
"""Events waiting and no successful delivery for this long: degraded."""


class State:
    """What the supervisor knows; updated from the report queue, read by the HTTP handlers."""

    def __init__(self, camera_names: list[str]) -> None:
        self._lock = threading.Lock()
        self.started_at = time.time()
        self.cameras: dict[str, dict[str, Any]] = {n: {"state": "starting"} for n in camera_names}
        self.uploader: dict[str, Any] = {"state": "starting"}
        self.restarts: dict[str, int] = {}

    def update(self, report: dict[str, Any]) -> None:
        with self._lock:
            if report.get("kind") == "camera":
                self.cameras[str(report["camera"])].update(report)
            elif report.get("kind") == "uploader":
                self.uploader.update(report)

    def restarted(self, name: str) -> None:
        with self._lock:
            self.restarts[name] = self.restarts.get(name, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            cameras = {name: dict(values) for name, values in self.cameras.items()}
            uploader = dict(self.uploader)
            restarts = dict(self.restarts)
        queue = uploader.get("queue") or {}
        problems: list[str] = []
        critical = False
        for name, camera in cameras.items():
            if camera.get("state") in ("failed", "reconnecting"):
                problems.append(
                    f"camera {name}: {camera.get('state')} ({camera.get('last_error')})"
                )
            if camera.get("events_refused"):
                critical = True
                problems.append(
                    f"camera {name}: {camera['events_refused']} events refused (queue full)"
                )
        if queue.get("over_budget") and not queue.get("snapshots"):
            critical = True
            problems.append("queue over its disk budget with no snapshot left to drop")
        if queue.get("dead_letters"):
            problems.append(f"{queue['dead_letters']} events refused by the server (dead letters)")
        last_ok = uploader.get("last_success_at")
        if queue.get("depth") and (last_ok is None or time.time() - last_ok > STALE_UPLOAD_S):
            if (queue.get("oldest_age_s") or 0) > STALE_UPLOAD_S:
                problems.append("events waiting and no successful upload for 10 minutes")
        status = "critical" if critical else ("degraded" if problems else "ok")
        return {
            "status": status,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "problems": problems,
            "cameras": {
                name: {
                    k: camera.get(k)
                    for k in (
                        "state", "fps", "frames_read", "frames_processed", "frames_skipped_static",
                        "bad_frames", "detections", "embeddings",
                        "reconnects", "tracks_sent", "tracks_discarded", "staff_tracks",
                        "events_refused", "processing_errors", "last_frame_at", "last_error",
                    )
                }
                for name, camera in cameras.items()
            },
            "queue": queue,
            "uploader": {k: v for k, v in uploader.items() if k not in ("queue", "kind")},
            "restarts": restarts,
        }  # fmt: skip


class _Collector(Collector):
    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        snap = self._state.snapshot()
        fps = GaugeMetricFamily(
            "visitlens_edge_camera_fps", "processed frames/s", labels=["camera"]
        )
        up = GaugeMetricFamily(
            "visitlens_edge_camera_up", "1 when frames arrive", labels=["camera"]
        )
        counters = {
            key: CounterMetricFamily(f"visitlens_edge_{key}", help_, labels=["camera"])
            for key, help_ in (
                ("frames_processed", "frames that went through detection"),
                ("frames_skipped_static", "frames skipped by the motion gate"),
                ("bad_frames", "frames that could not be decoded"),
                ("reconnects", "stream reconnections"),
                ("tracks_sent", "passes queued as face.detected events"),
                ("tracks_discarded", "passes without a recognisable shot"),
                ("staff_tracks", "passes of staff, kept on the device"),
                ("events_refused", "events lost because the queue was full"),
            )
        }
        for name, camera in snap["cameras"].items():
            fps.add_metric([name], float(camera.get("fps") or 0.0))
            up.add_metric([name], 1.0 if camera.get("state") == "running" else 0.0)
            for key, family in counters.items():
                family.add_metric([name], float(camera.get(key) or 0))
        yield fps
        yield up
        yield from counters.values()
        queue = snap["queue"]
        uploader = snap["uploader"]
        for key, help_ in (
            ("depth", "events waiting on disk"),
            ("bytes", "bytes of the queue on disk"),
            ("snapshots", "snapshots waiting on disk"),
            ("dead_letters", "events the server refused for good"),
        ):
            yield GaugeMetricFamily(
                f"visitlens_edge_queue_{key}", help_, value=float(queue.get(key) or 0)
            )
        yield GaugeMetricFamily(
            "visitlens_edge_queue_oldest_age_seconds",
            "age of the oldest event waiting on disk",
            value=float(queue.get("oldest_age_s") or 0),
        )
        for key, help_ in (
            ("delivered", "events the server accepted"),
            ("retries", "failed delivery attempts"),
            ("snapshots_uploaded", "snapshots stored in S3"),
        ):
            yield CounterMetricFamily(
                f"visitlens_edge_{key}", help_, value=float(uploader.get(key) or 0)
            )
        yield GaugeMetricFamily(
            "visitlens_edge_last_upload_timestamp_seconds", "time of the last accepted event",
            value=float(uploader.get("last_success_at") or 0),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "visitlens_edge_staff_gallery_version", "version of the local staff gallery",
            value=float(uploader.get("staff_gallery_version") or -1),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "visitlens_edge_healthy", "1 ok, 0.5 degraded, 0 critical",
            value={"ok": 1.0, "degraded": 0.5}.get(snap["status"], 0.0),
        )  # fmt: skip


def serve(state: State, host: str, port: int) -> ThreadingHTTPServer:
    registry = CollectorRegistry()
    registry.register(_Collector(state))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] in ("/healthz", "/"):
                snap = state.snapshot()
                body = json.dumps(snap, indent=2, default=str).encode()
                code = 503 if snap["status"] == "critical" else 200
                self._send(code, body, "application/json")
            elif self.path.split("?")[0] == "/metrics":
                self._send(200, generate_latest(registry), "text/plain; version=0.0.4")
            else:
                self._send(404, b'{"detail": "not found"}', "application/json")

        def _send(self, code: int, body: bytes, media_type: str) -> None:
            self.send_response(code)
            self.send_header("content-type", media_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
