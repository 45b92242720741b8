"""Pipeline speed against OpenCV's own FaceDetectorYN + FaceRecognizerSF, side by side in one run,
on the same prepared models and images, one thread each: ms per frame and per face, and the ratio.
Every face is embedded by both (no quality gating), so both do the same work."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from visitlens.adapters.model_prep import verified_path
from visitlens.adapters.onnx_models import cv2_threads, load_models
from visitlens.config import Settings
from visitlens.vision.pipeline import FacePipeline
from visitlens.vision.types import Image, as_image
from visitlens_dev.bench import lfw

RUNS = 30
WARMUP = 3


def _frames() -> dict[str, Image]:
    group = lfw.faces_dir() / "group"
    frames = {p.name: as_image(cv2.imread(str(p))) for p in sorted(group.glob("dlib_20*.jpg"))}
    # A store-camera-sized frame: four LFW faces on a 640 x 480 background.
    canvas = np.full((480, 640, 3), 90, np.uint8)
    names = ["Colin_Powell/Colin_Powell_0040.jpg", "Laura_Bush/Laura_Bush_0011.jpg",
             "Aaron_Peirsol/Aaron_Peirsol_0001.jpg", "George_W_Bush/George_W_Bush_0007.jpg"]  # fmt: skip
    for i, name in enumerate(names):
        face = cv2.resize(as_image(cv2.imread(str(lfw.faces_dir() / "lfw" / name))), (200, 200))
        y, x = (i // 2) * 240 + 20, (i % 2) * 320 + 60
        canvas[y : y + 200, x : x + 200] = face
    frames["store_640x480_4faces"] = canvas
    return frames


def _median_ms(fn: Callable[[], int]) -> tuple[float, int]:
    faces = 0
    for _ in range(WARMUP):
        faces = fn()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), faces


async def run(settings: Settings) -> dict[str, Any]:
    cv2_threads(1)
    one_thread = settings.models.model_copy(update={"intra_op_threads": 1})
    ours = FacePipeline(*load_models(settings.model_copy(update={"models": one_thread})))
    det_path, _ = verified_path(settings.models_dir, "yunet-2023mar")
    rec_path, _ = verified_path(settings.models_dir, "sface-2021dec")
    recognizer = cv2.FaceRecognizerSF.create(str(rec_path), "")
    per_frame = {}
    ours_total = cv2_total = 0.0
    faces_total = 0
    for name, frame in _frames().items():
        h, w = frame.shape[:2]
        detector = cv2.FaceDetectorYN.create(
            str(det_path), "", (w, h), settings.models.detector_score,
            settings.models.detector_nms_iou, settings.models.max_faces,
        )  # fmt: skip

        def opencv(frame: Image = frame, detector: Any = detector) -> int:
            _, faces = detector.detect(frame)
            if faces is None:
                return 0
            for face in faces:
                feature = recognizer.feature(recognizer.alignCrop(frame, face))
                _ = feature / np.linalg.norm(feature)
            return len(faces)

        def visitlens(frame: Image = frame) -> int:
            return len(ours.analyze(frame, embed_unusable=True))

        ours_ms, ours_faces = _median_ms(visitlens)
        cv2_ms, cv2_faces = _median_ms(opencv)
        per_frame[name] = {
            "size": [w, h],
            "faces_visitlens": ours_faces,
            "faces_opencv": cv2_faces,
            "visitlens_ms": round(ours_ms, 2),
            "opencv_ms": round(cv2_ms, 2),
            "ratio_opencv_over_visitlens": round(cv2_ms / ours_ms, 3),
        }
        ours_total += ours_ms
        cv2_total += cv2_ms
        faces_total += max(ours_faces, 1)
    detect_only = _detector_only(ours, det_path, settings)
    return {
        "description": " ".join((__doc__ or "").split()),
        "runs_per_frame": RUNS,
        "frames": per_frame,
        "summary": {
            "visitlens_ms_per_frame_mean_of_medians": round(ours_total / len(per_frame), 2),
            "opencv_ms_per_frame_mean_of_medians": round(cv2_total / len(per_frame), 2),
            "visitlens_ms_per_face": round(ours_total / faces_total, 2),
            "opencv_ms_per_face": round(cv2_total / faces_total, 2),
            "ratio_opencv_over_visitlens": round(cv2_total / ours_total, 3),
            "target": "ratio >= 1.0 (at least as fast as OpenCV's pipeline)",
        },
        "detection_only_640x480": detect_only,
    }


def _detector_only(ours: FacePipeline, det_path: Any, settings: Settings) -> dict[str, float]:
    frame = _frames()["store_640x480_4faces"]
    detector = cv2.FaceDetectorYN.create(str(det_path), "", (640, 480), 0.6, 0.3, 5000)

    def opencv() -> int:
        return len(detector.detect(frame)[1])

    def visitlens() -> int:
        return len(ours.detector.detect(frame))

    ours_ms, _ = _median_ms(visitlens)
    cv2_ms, _ = _median_ms(opencv)
    return {"visitlens_ms": round(ours_ms, 2), "opencv_ms": round(cv2_ms, 2),
            "ratio_opencv_over_visitlens": round(cv2_ms / ours_ms, 3)}  # fmt: skip
