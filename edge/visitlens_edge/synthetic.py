"""Synthetic visitor clips: face photos walking across a static scene, written as a video file.

Used by ``make demo`` (with face photos that ship inside registry packages) and by the tests (with
../shared/faces). Each pass moves one face across a lane of the frame; between passes the scene is
static, which the motion gate skips."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from visitlens.vision.pipeline import Detector
from visitlens.vision.types import Image, as_image

TILE = 200
"""Side of the square a face (with its hair and shoulders) occupies in the clip."""


@dataclass(frozen=True, slots=True)
class Pass:
    person: str
    photo: Image
    start_s: float
    duration_s: float = 4.0
    lane: int = 0  # 0: upper half, 1: lower half
    leftwards: bool = False


def face_tile(photo: Image, detector: Detector, side: int = TILE) -> Image:
    """The photo's most confident face, centred in a ``side`` px square with context around it."""
    detections = detector.detect(photo)
    if not detections:
        raise ValueError("no face in the photo")
    x, y, w, h = max(detections, key=lambda d: d.score).box
    cx, cy, half = x + w / 2, y + h / 2, max(w, h) * 0.95
    matrix = np.array(
        [[side / (2 * half), 0, side / 2 - cx * side / (2 * half)],
         [0, side / (2 * half), side / 2 - cy * side / (2 * half)]],
        np.float32,
    )  # fmt: skip
    tile = cv2.warpAffine(photo, matrix, (side, side), borderMode=cv2.BORDER_REPLICATE)
    return as_image(tile)


def background(width: int, height: int, seed: int = 7) -> Image:
    """A static 'shop floor': a soft gradient with some shelves, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    ys = np.linspace(0, 1, height)[:, None]
    xs = np.linspace(0, 1, width)[None, :]
    base = np.stack([150 + 40 * ys + 10 * xs, 140 + 30 * xs + 0 * ys, 120 + 50 * ys * xs], axis=-1)
    image = np.clip(base + rng.normal(0, 3, (height, width, 3)), 0, 255).astype(np.uint8)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 80)), int(rng.integers(0, height - 60))
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(image, (x0, y0), (x0 + int(rng.integers(40, 120)), y0 + 30), colour, -1)
    return as_image(image)


def _alpha(side: int) -> np.ndarray:
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(
        mask, (side // 2, side // 2), (int(side * 0.46), int(side * 0.49)), 0, 0, 360, 1.0, -1
    )
    return cv2.GaussianBlur(mask, (0, 0), side * 0.04)[..., None]


def render(
    path: Path,
    passes: list[Pass],
    detector: Detector,
    *,
    fps: float = 10.0,
    size: tuple[int, int] = (640, 480),
    length_s: float | None = None,
) -> int:
    """Write the clip (MJPEG in AVI); returns the number of frames."""
    width, height = size
    scene = background(width, height)
    tiles = {id(p): face_tile(p.photo, detector) for p in passes}
    alpha = _alpha(TILE)
    length = length_s or max(p.start_s + p.duration_s for p in passes) + 2.0
    count = round(length * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path}")
    try:
        for index in range(count):
            t = index / fps
            frame = scene.astype(np.float32)
            for p in passes:
                progress = (t - p.start_s) / p.duration_s
                if not 0.0 <= progress <= 1.0:
                    continue
                if p.leftwards:
                    progress = 1.0 - progress
                x = int(10 + progress * (width - TILE - 20))
                lane_top = 10 if p.lane == 0 else height - TILE - 10
                y = int(lane_top + 6 * np.sin(progress * 12))
                region = frame[y : y + TILE, x : x + TILE]
                region[:] = region * (1 - alpha) + tiles[id(p)].astype(np.float32) * alpha
            writer.write(frame.astype(np.uint8))
    finally:
        writer.release()
    return count


def to_frames(clip: Path, folder: Path, quality: int = 92) -> int:
    """A rendered clip as frame-00000.jpg … in ``folder`` (what an RTSP test camera plays)."""
    folder.mkdir(parents=True, exist_ok=True)
    capture = cv2.VideoCapture(str(clip))
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return count
            cv2.imwrite(
                str(folder / f"frame-{count:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            count += 1
    finally:
        capture.release()
