"""Frames from a camera: RTSP/HTTP streams and video files through OpenCV's FFmpeg backend, USB
devices, or a folder of images; throttled to the configured fps; live sources reconnect with
exponential backoff and jitter when they drop. A motion gate decides whether a frame is worth a
detection pass."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from visitlens.vision.types import Image, as_image
from visitlens_edge.config import CameraSettings, MotionSettings, Roi

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(slots=True)
class Frame:
    image: Image
    ts: float  # seconds since the epoch (UTC)


@dataclass(slots=True)
class CaptureStats:
    frames_read: int = 0
    frames_yielded: int = 0
    bad_frames: int = 0
    reconnects: int = 0
    connected: bool = False
    last_error: str | None = None
    last_frame_at: float | None = None


class SourceEnded(Exception):
    """A file or folder has no more frames."""


def _start_time(settings: CameraSettings) -> float:
    if settings.start_time is None:
        return time.time()
    parsed = datetime.fromisoformat(settings.start_time)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Capture:
    """Iterate ``frames()``; stop from another thread with ``stop``."""

    def __init__(self, settings: CameraSettings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.stats = CaptureStats()
        self._wait = wait_exponential_jitter(
            multiplier=settings.reconnect_initial_s,
            max=settings.reconnect_max_s,
            jitter=settings.reconnect_initial_s,
        )

    def frames(self) -> Iterator[Frame]:
        kind = self.settings.kind
        if kind == "folder":
            yield from self._folder()
        elif kind == "file":
            yield from self._file()
        else:
            yield from self._live()

    # --- live: streams and USB --------------------------------------------------------------

    def _open_live(self) -> cv2.VideoCapture:
        source = self.settings.source
        timeout_ms = int(self.settings.open_timeout_s * 1000)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            timeout_ms,
        ]
        if source.lower().startswith("usb:"):
            return cv2.VideoCapture(int(source[4:]), cv2.CAP_ANY, params)
        # TCP for RTSP: no lost UDP packets smearing frames on a busy store network.
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)

    def _live(self) -> Iterator[Frame]:
        attempt = 0
        interval = 1.0 / self.settings.fps
        while not self.stop.is_set():
            capture = self._open_live()
            if not capture.isOpened():
                self._down("could not open the stream")
                attempt += 1
                self._backoff(attempt)
                continue
            self.stats.connected = True
            attempt = 0
            next_due = 0.0
            failures = 0
            while not self.stop.is_set():
                if not capture.grab():  # grab is cheap: frames between due times are skipped
                    failures += 1
                    if failures >= 3:
                        self._down("the stream stopped delivering frames")
                        break
                    continue
                failures = 0
                self.stats.frames_read += 1
                now = time.time()
                if now < next_due:
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None or image.size == 0:
                    self.stats.bad_frames += 1
                    continue
                next_due = max(next_due + interval, now - interval)
                yield from self._emit(image, now)
            capture.release()
            if not self.stop.is_set():
                attempt += 1
                self.stats.reconnects += 1
                self._backoff(attempt)

    def _down(self, reason: str) -> None:
        if self.stats.connected or self.stats.last_error != reason:
            logger.warning("camera %s: %s", self.settings.name, reason)
        self.stats.connected = False
        self.stats.last_error = reason

    def _backoff(self, attempt: int) -> None:
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        self.stop.wait(self._wait(state))

    # --- files and folders -----------------------------------------------------------------

    def _paced(self) -> bool:
        realtime = self.settings.realtime
        return bool(realtime) if realtime is not None else False

    def _file(self) -> Iterator[Frame]:
        path = Path(self.settings.source)
        capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            self._down(f"cannot open video file {path.name}")
            return
        self.stats.connected = True
        start = _start_time(self.settings)
        interval = 1.0 / self.settings.fps
        next_due = 0.0
        wall0 = time.monotonic()
        try:
            while not self.stop.is_set():
                if not capture.grab():
                    return
                self.stats.frames_read += 1
                position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                if position + 1e-6 < next_due:
                    continue
                ok, image = capture.retrieve()
                if not ok or image is None or image.size == 0:
                    self.stats.bad_frames += 1
                    continue
                next_due += interval
                if self._paced():
                    self.stop.wait(max(0.0, position - (time.monotonic() - wall0)))
                yield from self._emit(image, start + position)
        finally:
            capture.release()
            self.stats.connected = False

    def _folder(self) -> Iterator[Frame]:
        folder = Path(self.settings.source)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.stats.connected = True
        start = _start_time(self.settings)
        interval = 1.0 / self.settings.fps
        for index, path in enumerate(files):
            if self.stop.is_set():
                return
            self.stats.frames_read += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None or image.size == 0:
                self.stats.bad_frames += 1
                logger.warning(
                    "camera %s: unreadable image %s skipped", self.settings.name, path.name
                )
                continue
            if self._paced():
                self.stop.wait(interval)
            yield from self._emit(image, start + index * interval)
        self.stats.connected = False

    def _emit(self, image: np.ndarray, ts: float) -> Iterator[Frame]:
        """The frame, or nothing (counted) when it is not a BGR 8-bit picture."""
        try:
            frame = Frame(as_image(np.ascontiguousarray(image)), ts)
        except ValueError:
            self.stats.bad_frames += 1
            return
        self.stats.frames_yielded += 1
        self.stats.last_frame_at = ts
        yield frame


def apply_roi(image: Image, roi: Roi | None, masks: list[Roi]) -> tuple[Image, tuple[int, int]]:
    """The analysed part of the frame (masked areas blacked out) and its offset in the frame."""
    height, width = image.shape[:2]
    if masks:
        image = image.copy()
        for mask in masks:
            x0, y0 = int(mask.x * width), int(mask.y * height)
            x1, y1 = int((mask.x + mask.width) * width), int((mask.y + mask.height) * height)
            image[y0:y1, x0:x1] = 0
    if roi is None:
        return image, (0, 0)
    x0, y0 = int(roi.x * width), int(roi.y * height)
    x1, y1 = int((roi.x + roi.width) * width), int((roi.y + roi.height) * height)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), (x0, y0)


class MotionGate:
    """Frame differencing against a slowly updated background, on a small grey copy."""

    WIDTH = 160

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._background: np.ndarray | None = None

    def moving(self, image: Image) -> bool:
        if not self.settings.enabled:
            return True
        height, width = image.shape[:2]
        small_h = max(1, int(height * self.WIDTH / width))
        grey = cv2.cvtColor(cv2.resize(image, (self.WIDTH, small_h)), cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey
            return True
        diff = cv2.absdiff(grey, self._background)
        cv2.accumulateWeighted(grey, self._background, self.settings.background_rate)
        moving = float(np.count_nonzero(diff > self.settings.pixel_threshold)) / diff.size
        return moving >= self.settings.min_area
