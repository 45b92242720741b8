"""Edge building blocks without a camera or a server: configuration errors, the disk queue's
order and disk policy, the tracker's association and shot selection, the staff match."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from visitlens.vision.detection import Detection
from visitlens.vision.quality import Quality
from visitlens_edge.config import ConfigError, TrackingSettings, load
from visitlens_edge.queue import DiskQueue, QueueFull
from visitlens_edge.staff import StaffGallery
from visitlens_edge.tracking import Observation, Tracker

REPO = Path(__file__).resolve().parents[2]

GOOD = """
tenant_id: 0b7c1a52-3d1e-4c57-9a7e-2f1d8e6b4a10
site_id: 5e2a9c41-7b3d-4f0e-8c6a-1d9b7e3f2a55
cameras:
  - {id: 9c4e1b7a-2d5f-4a8e-b1c3-6e7f8a9b0c21, name: door, source: "usb:0"}
api: {base_url: "http://127.0.0.1:8080", api_key: vlk_test}
"""


def test_config_names_every_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(GOOD.replace('source: "usb:0"', 'source: "usb:0", fps: 0') + "bogus: 1\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert "cameras.0.fps" in str(error.value) and "bogus" in str(error.value)
    path.write_text(GOOD)
    assert load(path).cameras[0].kind == "usb"
    # the command line: a readable error and a non-zero exit
    path.write_text(GOOD.replace("vlk_test", "vlk_test, credentials_file: /k"))
    result = subprocess.run(
        [sys.executable, "-m", "visitlens_edge", "check-config", "--config", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "api: Value error, give exactly one" in result.stderr


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("VISITLENS_EDGE_TRACKING__BEST_SHOTS", "5")
    assert load(path).tracking.best_shots == 5


def _event(i: int, size: int = 100) -> tuple[dict[str, str], dict[str, str]]:
    return {"id": f"e{i}", "type": "t", "source": "s"}, {"x": "y" * size}


def test_queue_keeps_order_and_survives_a_reopen(tmp_path: Path) -> None:
    queue = DiskQueue(tmp_path, 10**8, 10**9)
    for i in range(5):
        queue.put("door", *_event(i))
    queue.put("door", *_event(0))  # the same event twice is stored once
    queue.close()
    reopened = DiskQueue(tmp_path, 10**8, 10**9)
    seen = []
    while (head := reopened.head()) is not None:
        seen.append(head.event_id)
        reopened.ack(head.seq)
    assert seen == ["e0", "e1", "e2", "e3", "e4"]


def test_snapshots_go_first_then_the_queue_refuses(tmp_path: Path) -> None:
    limit = 1024 * 1024
    queue = DiskQueue(tmp_path, limit // 2, limit)
    jpeg = b"\xff" * 100_000
    for i in range(8):
        queue.put("door", *_event(i), snapshot=(f"t{i}", "2026-11-20T10:00:00Z", jpeg))
    stats = queue.stats()
    assert stats.snapshots < 8 and stats.snapshots_dropped == 8 - stats.snapshots
    assert stats.depth == 8  # no event was dropped to make room
    with pytest.raises(QueueFull):
        for i in range(8, 1000):
            queue.put("door", *_event(i, 20_000))
    assert queue.counter("events_refused_full") == 1
    head = queue.head()
    assert head is not None and head.event_id == "e0"
    queue.dead_letter(head, 422, "bad event")
    assert queue.stats().dead_letters == 1 and queue.head().event_id == "e1"  # type: ignore[union-attr]


def _observation(x: float, quality: float = 0.9) -> Observation:
    detection = Detection((x, 100.0, 80.0, 80.0), 0.95, np.zeros((5, 2), np.float32))
    image = np.zeros((8, 8, 3), np.uint8)
    return Observation(detection, Quality(quality), image, image)


def test_tracker_follows_a_face_and_reports_one_pass() -> None:
    rng = np.random.default_rng(0)
    person = rng.normal(size=128).astype(np.float32)
    person /= np.linalg.norm(person)
    calls: list[int] = []

    def embed(crops: object) -> np.ndarray:
        n = len(crops)  # type: ignore[arg-type]
        calls.append(n)
        return np.stack([person] * n)

    settings = TrackingSettings(best_shots=3, min_shot_interval_s=0.0, end_after_s=1.0)
    tracker = Tracker("door", settings, embed, snapshot_margin=0.2)
    finished = []
    for step in range(20):  # moves 10 px per frame at 5 fps
        quality = 0.9 if step in (3, 7, 11) else 0.6
        finished += tracker.step(step * 0.2, [_observation(10.0 + step * 10, quality)])
    assert finished == [] and len(tracker.active) == 1
    finished += tracker.tick(20 * 0.2 + 2.0)
    assert len(finished) == 1
    track = finished[0].track
    assert track.frames_seen == 20 and len(track.shots) == 3
    assert [s.quality for s in track.shots] == [0.9, 0.9, 0.9]  # the best three
    assert track.shots[0].snapshot is not None and track.shots[1].snapshot is None
    assert sum(calls) == 6  # three to fill the shots, then only the better ones


def test_tracker_bridges_a_short_occlusion_by_embedding() -> None:
    vector = np.ones(128, np.float32) / np.sqrt(128)
    settings = TrackingSettings(min_shot_interval_s=0.0, lost_after_s=0.3, end_after_s=2.0)
    tracker = Tracker("door", settings, lambda c: np.stack([vector] * len(c)), None)
    tracker.step(0.0, [_observation(10.0)])
    tracker.step(0.2, [_observation(20.0)])
    # hidden for a second, then seen far away: no IoU, but the same face
    tracker.step(1.2, [_observation(400.0)])
    assert len(tracker.active) == 1 and tracker.active[0].frames_seen == 3


def test_staff_match_needs_the_same_model_and_enough_similarity() -> None:
    rng = np.random.default_rng(1)
    views = rng.normal(size=(3, 128)).astype(np.float32)
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    gallery = StaffGallery(4, "sface-2021dec", ("a", "a", "b"), views)
    shots = views[[0, 1]]
    staff_id, similarity = gallery.best_match(shots, "sface-2021dec")
    assert staff_id == "a" and similarity > 0.99
    assert gallery.best_match(shots, "arcface-user-x") == (None, -1.0)
    stranger = rng.normal(size=(2, 128)).astype(np.float32)
    stranger /= np.linalg.norm(stranger, axis=1, keepdims=True)
    assert gallery.best_match(stranger, "sface-2021dec")[1] < 0.358


def test_shipped_example_config_and_launchd_agent_are_valid() -> None:
    import plistlib

    repo = Path(__file__).resolve().parents[2]
    settings = load(repo / "edge" / "edge.example.yaml")
    assert settings.cameras[0].kind == "stream" and settings.health.port == 9108
    agent = plistlib.loads((repo / "edge" / "deploy" / "dev.visitlens.edge.plist").read_bytes())
    assert agent["KeepAlive"] is True and agent["ProgramArguments"][1].endswith("run-worker.sh")
    for script in ("scripts/run-worker.sh",):
        assert subprocess.run(["bash", "-n", str(repo / script)], check=False).returncode == 0


def test_a_long_stay_is_reported_in_segments() -> None:
    vector = np.ones(128, np.float32) / np.sqrt(128)
    settings = TrackingSettings(max_duration_s=10.0, min_shot_interval_s=0.0)
    tracker = Tracker("door", settings, lambda c: np.stack([vector] * len(c)), None)
    finished = []
    for step in range(130):  # 26 s in front of the camera at 5 fps, barely moving
        finished += tracker.step(step * 0.2, [_observation(100.0 + (step % 2))])
    finished += tracker.flush()
    ids = [f.event_track_id for f in finished]
    assert [f.reason for f in finished] == ["segment", "segment", "flush"]
    assert ids[0].endswith(".0") and ids[1].endswith(".1") and ids[2].endswith(".2")
    assert len(set(ids)) == 3  # three events, three ids: the server extends one visit
    assert all(f.track.shots for f in finished)


def test_the_last_staff_gallery_is_used_offline(tmp_path: Path) -> None:
    from visitlens_edge import staff

    views = np.eye(128, dtype=np.float32)[:2]
    staff.save(tmp_path, StaffGallery(7, "sface-2021dec", ("a", "b"), views, '"etag"'))
    reader = staff.GalleryFile(tmp_path)
    gallery = reader.refresh()
    assert gallery.version == 7 and gallery.etag == '"etag"'
    assert gallery.best_match(views[:1], "sface-2021dec")[0] == "a"
    (tmp_path / staff.GALLERY_FILE).write_text("{broken")  # a torn file is not trusted …
    import os

    os.utime(tmp_path / staff.GALLERY_FILE, (1, 1))
    assert reader.refresh().version == 7  # … the copy in memory stays


def test_the_staff_threshold_comes_from_the_server_with_the_gallery() -> None:
    """One source of truth: the gallery carries the server's threshold and it survives the file
    the device keeps for offline starts; an old server's gallery (none) leaves the local one."""
    body = {"version": 3, "model_id": "sface-2021dec", "staff_match_threshold": 0.41,
            "entries": [{"staff_id": "s1", "embedding": [1.0, 0.0]}]}  # fmt: skip
    gallery = StaffGallery.from_body(body, '"etag"')
    assert gallery.threshold == 0.41
    assert StaffGallery.from_body(gallery.to_body(), gallery.etag).threshold == 0.41
    assert StaffGallery.from_body({**body, "staff_match_threshold": None}, None).threshold is None


def test_a_2xx_that_is_not_what_the_uploader_expects_is_retried_not_a_crash(
    tmp_path: Path,
) -> None:
    """A proxy's 200 page instead of a token: a Transient (retried with backoff), never a
    KeyError that ends the uploader; the same for the snapshot grant (given up, event goes on)."""
    import httpx

    from visitlens_edge.uploader import Refused, TokenSource, Transient, Uploader

    key = tmp_path / "api-key"
    key.write_text("vlk_x_y")
    text = (REPO / "edge" / "edge.example.yaml").read_text().replace("var/edge", str(tmp_path))
    config = tmp_path / "edge.yaml"
    config.write_text(text.replace("credentials_file: api-key", f"credentials_file: {key}"))
    settings = load(config)
    odd = httpx.Client(
        base_url="http://edge.test",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>welcome</html>")),
    )
    with pytest.raises(Transient):
        TokenSource(odd, settings).header()
    uploader = Uploader(settings, threading.Event(), None)
    uploader.client = odd
    uploader.tokens = TokenSource(odd, settings)
    uploader.tokens._token, uploader.tokens._renew_at = "t", float("inf")
    pending = type("P", (), {"snapshot": b"jpeg", "snapshot_track": "t1",
                             "snapshot_time": "2026-11-30T10:00:00Z", "data": {"camera_id": "c"}})()  # fmt: skip
    with pytest.raises(Refused):
        uploader._upload_snapshot(pending)
    uploader.queue.close()


def test_a_backlog_goes_as_batches_and_each_answer_is_handled(tmp_path: Path) -> None:
    """Counted events are acknowledged, refused ones dead-lettered with the reason, retryable ones
    stay queued; a server that refuses batches as such gets the events one by one."""
    import json

    import httpx

    from visitlens_edge.uploader import BATCH, TokenSource, Transient, Uploader

    text = (REPO / "edge" / "edge.example.yaml").read_text().replace("var/edge", str(tmp_path))
    key = tmp_path / "api-key"
    key.write_text("vlk_x_y")
    config = tmp_path / "edge.yaml"
    config.write_text(text.replace("credentials_file: api-key", f"credentials_file: {key}"))
    settings = load(config)
    seen: list[tuple[str, int]] = []
    refuse_batches = False

    def server(request: httpx.Request) -> httpx.Response:
        if request.headers.get("content-type") == BATCH:
            if refuse_batches:
                return httpx.Response(415, json={"detail": "no batches here"})
            events = json.loads(request.content)
            seen.append(("batch", len(events)))
            statuses = [422 if e["data"]["n"] == 2 else 429 if e["data"]["n"] == 3 else 200
                        for e in events]  # fmt: skip
            return httpx.Response(200, json={"results": [
                {"id": e["id"], "status": s, **({"problem": {"detail": "bad"}} if s >= 400 else {})}
                for e, s in zip(events, statuses, strict=True)]})  # fmt: skip
        seen.append(("single", 1))
        return httpx.Response(200, json={"outcome": "new"})

    client = httpx.Client(base_url="http://edge.test", transport=httpx.MockTransport(server))
    uploader = Uploader(settings, threading.Event(), None)
    uploader.client = client
    uploader.tokens = TokenSource(client, settings)
    uploader.tokens._token, uploader.tokens._renew_at = "t", float("inf")
    for n in range(6):
        attributes = {"id": f"e{n}", "source": "/s", "type": "com.visitlens.face.detected.v2"}
        uploader.queue.put("c", attributes, {"n": n})

    seqs = [p.seq for p in uploader.queue.heads(10)]
    with pytest.raises(Transient, match="1 event"):
        uploader.deliver_batch(seqs)
    assert seen == [("batch", 6)]
    left = [p.event_id for p in uploader.queue.heads(10)]
    assert left == ["e3"]  # retried later; e2 dead-lettered, the rest counted
    assert uploader.stats.delivered == 4 and uploader.stats.dead_lettered == 1

    refuse_batches = True
    for n in (6, 7):
        attributes = {"id": f"e{n}", "source": "/s", "type": "com.visitlens.face.detected.v2"}
        uploader.queue.put("c", attributes, {"n": n})
    uploader.deliver_batch([p.seq for p in uploader.queue.heads(10)])
    assert seen[-1] == ("single", 1)  # the head went alone
    assert uploader.run_once(threading.Event())  # and so does the rest, for a while
    assert seen[-1] == ("single", 1) and len(uploader.queue.heads(10)) == 1
    uploader.queue.close()
