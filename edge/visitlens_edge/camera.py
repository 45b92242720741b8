"""One camera's process: capture → motion gate → detect → align/assess → track → staff filter →
event (+ snapshot) into the disk queue. Reports its counters to the supervisor every second."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import numpy as np

from visitlens.adapters.onnx_models import cv2_threads, load_demographics, load_model_pair
from visitlens.errors import ConfigurationError
from visitlens.vision.alignment import align
from visitlens.vision.detection import Detection
from visitlens.vision.quality import assess
from visitlens.vision.types import Image
from visitlens_edge import events, staff
from visitlens_edge.capture import Capture, MotionGate, apply_roi
from visitlens_edge.config import CameraSettings, EdgeSettings
from visitlens_edge.queue import DiskQueue, QueueFull
from visitlens_edge.staff import GalleryFile
from visitlens_edge.tracking import Finished, Observation, Tracker

logger = logging.getLogger(__name__)
REPORT_EVERY_S = 1.0


@dataclass(slots=True)
class CameraStats:
    camera: str
    state: str = "starting"  # starting | running | reconnecting | ended | failed
    fps: float = 0.0
    frames_processed: int = 0
    frames_skipped_static: int = 0
    frames_read: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    detections: int = 0
    embeddings: int = 0
    tracks_sent: int = 0
    tracks_discarded: int = 0
    staff_tracks: int = 0
    events_refused: int = 0
    processing_errors: int = 0
    last_frame_at: float | None = None
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _shift(detection: Detection, dx: int, dy: int) -> Detection:
    if dx == 0 and dy == 0:
        return detection
    x, y, w, h = detection.box
    return Detection(
        (x + dx, y + dy, w, h),
        detection.score,
        detection.landmarks + np.array([dx, dy], np.float32),
    )


class CameraWorker:
    def __init__(
        self,
        settings: EdgeSettings,
        camera: CameraSettings,
        stop: threading.Event,
        reports: Queue[dict[str, Any]] | None,
    ) -> None:
        self.settings = settings
        self.camera = camera
        self.stop = stop
        self.reports = reports
        cv2_threads(1)
        self.detector, self.embedder = load_model_pair(settings.models, settings.models_dir)
        self.queue = DiskQueue(settings.queue.dir, settings.queue.max_bytes, settings.hard_limit)
        self.gallery = GalleryFile(settings.queue.dir)
        margin = settings.snapshots.margin if settings.snapshots.enabled else None
        self.demographics = settings.demographics.enabled
        estimator = None
        if self.demographics:
            try:
                estimator = load_demographics(settings.models, settings.models_dir).estimate
            except ConfigurationError as exc:  # counting must not stop for want of them
                logger.error("camera %s: demographics off: %s", camera.name, exc.message)
                self.demographics = False
        self.tracker = Tracker(
            camera.name, settings.tracking, self.embedder.embed, margin, estimator
        )
        self.motion = MotionGate(camera.motion)
        self.stats = CameraStats(camera.name)
        self._window: list[float] = []
        self._last_report = 0.0

    # --- one frame ------------------------------------------------------------------------

    def observe(self, image: Image) -> list[Observation]:
        analysed, (dx, dy) = apply_roi(image, self.camera.roi, self.camera.masks)
        detections = [_shift(d, dx, dy) for d in self.detector.detect(analysed)]
        self.stats.detections += len(detections)
        frame = image if not self.camera.masks else apply_roi(image, None, self.camera.masks)[0]
        observations = []
        for detection in detections:
            aligned = align(frame, detection.landmarks)
            observations.append(
                Observation(detection, assess(detection, frame.shape, aligned), aligned, frame)
            )
        return observations

    def process(self, image: Image, ts: float) -> None:
        if not self.tracker.busy and not self.motion.moving(image):
            self.stats.frames_skipped_static += 1
            self.handle(self.tracker.tick(ts))
            return
        if self.tracker.busy:
            self.motion.moving(image)  # keep the background model current
        finished = self.tracker.step(ts, self.observe(image))
        self.stats.frames_processed += 1
        self.handle(finished)

    def handle(self, finished: list[Finished]) -> None:
        for done in finished:
            if not done.usable(self.settings.tracking):
                self.stats.tracks_discarded += 1
                continue
            shots = np.stack([s.embedding for s in done.track.shots])
            if self.settings.staff.enabled:
                gallery = self.gallery.refresh()
                staff_id, similarity = gallery.best_match(shots, self.embedder.model_id)
                threshold = (
                    gallery.threshold
                    if gallery.threshold is not None
                    else self.settings.staff.threshold
                )
                if staff_id is not None and similarity >= threshold:
                    self.stats.staff_tracks += 1
                    logger.info(
                        "camera %s: staff track %s dropped", self.camera.name, done.event_track_id
                    )
                    continue
            demographics = self.settings.demographics
            attributes, data = events.face_detected(
                done, self.settings.tenant_id, self.settings.site_id, self.camera.id,
                self.embedder.model_id, self.embedder.dim,
                demographics.confidence_floor if self.demographics else None,
            )  # fmt: skip
            snapshot = (
                events.snapshot_jpeg(done, self.settings.snapshots.jpeg_quality)
                if self.settings.snapshots.enabled
                else None
            )
            try:
                self.queue.put(self.camera.name, attributes, data, snapshot)
            except QueueFull as exc:
                self.stats.events_refused += 1
                self.stats.last_error = "queue full: event refused"
                logger.error(
                    "camera %s: QUEUE FULL, event %s (%d shots) not stored: %s",
                    self.camera.name, attributes["id"], len(done.track.shots), exc,
                )  # fmt: skip
                continue
            self.stats.tracks_sent += 1
            logger.info(
                "camera %s: track %s queued (%d frames, %d shots, %.1fs)",
                self.camera.name, attributes["id"], done.track.frames_seen, len(done.track.shots),
                done.track.last_seen - done.track.first_seen,
            )  # fmt: skip

    # --- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self._await_first_gallery()
        capture = Capture(self.camera, self.stop)
        self.stats.state = "running"
        # Reports also while no frame arrives (a dead stream being reconnected).
        reporter_done = threading.Event()
        reporter = threading.Thread(
            target=self._report_loop, args=(capture, reporter_done), daemon=True
        )
        reporter.start()
        try:
            for frame in capture.frames():
                try:
                    self.process(frame.image, frame.ts)
                except Exception as exc:  # one bad frame must not stop the camera
                    self.stats.processing_errors += 1
                    self.stats.last_error = f"processing: {type(exc).__name__}"
                    logger.exception("camera %s: frame failed", self.camera.name)
                self._tick(frame.ts, capture)
                if self.stop.is_set():
                    break
            self.handle(self.tracker.flush())
            self.stats.state = "ended" if not self.stop.is_set() else "stopped"
        finally:
            reporter_done.set()
            reporter.join()
            self._sync(capture)
            self._report(force=True)
            self.queue.close()

    def _await_first_gallery(self) -> None:
        staff_settings = self.settings.staff
        if not staff_settings.enabled or staff.load(self.settings.queue.dir) is not None:
            return
        deadline = time.monotonic() + staff_settings.first_sync_wait_s
        while time.monotonic() < deadline and not self.stop.is_set():
            if staff.load(self.settings.queue.dir) is not None:
                return
            self.stop.wait(0.2)
        logger.warning(
            "camera %s: no staff gallery yet; staff passes count as customers until it arrives",
            self.camera.name,
        )

    def _report_loop(self, capture: Capture, done: threading.Event) -> None:
        while not done.wait(REPORT_EVERY_S):
            if time.monotonic() - self._last_report >= REPORT_EVERY_S:
                if not self._window or time.monotonic() - self._window[-1] > 5.0:
                    self.stats.fps = 0.0
                self._sync(capture)
                self._report(force=True)

    def _tick(self, ts: float, capture: Capture) -> None:
        now = time.monotonic()
        self._window.append(now)
        while self._window and now - self._window[0] > 5.0:
            self._window.pop(0)
        self.stats.fps = (
            (len(self._window) - 1) / (self._window[-1] - self._window[0])
            if len(self._window) > 1 and self._window[-1] > self._window[0]
            else 0.0
        )
        self._sync(capture)
        self._report()

    def _sync(self, capture: Capture) -> None:
        c = capture.stats
        self.stats.frames_read = c.frames_read
        self.stats.bad_frames = c.bad_frames
        self.stats.reconnects = c.reconnects
        self.stats.last_frame_at = c.last_frame_at
        self.stats.embeddings = self.tracker.embeddings_computed
        if self.stats.state in ("running", "reconnecting"):
            self.stats.state = "running" if c.connected else "reconnecting"
        if c.last_error and not c.connected:
            self.stats.last_error = c.last_error

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.reports is None or (not force and now - self._last_report < REPORT_EVERY_S):
            return
        self._last_report = now
        self.reports.put({"kind": "camera", **asdict(self.stats)})


def stop_on_sigterm() -> threading.Event:
    """A child's stop flag, set by SIGTERM from the supervisor; Ctrl+C is the supervisor's alone.

    (Signals, not a shared multiprocessing.Event: a child that exits while waiting on one leaves
    its condition variable inconsistent and the next ``set()`` blocks forever.)
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return stop


def camera_main(
    settings: EdgeSettings,
    camera: CameraSettings,
    reports: Queue[dict[str, Any]],
    logs: Queue[Any],
) -> None:
    """Entry point of a camera process."""
    from visitlens_edge.logs import child_logging

    stop = stop_on_sigterm()
    child_logging(logs, settings.log.level)
    try:
        CameraWorker(settings, camera, stop, reports).run()
    except Exception as exc:
        logger.exception("camera %s failed", camera.name)
        reports.put({"kind": "camera", "camera": camera.name, "state": "failed",
                     "last_error": f"{type(exc).__name__}: {exc}"[:300]})  # fmt: skip
        raise SystemExit(1) from exc
