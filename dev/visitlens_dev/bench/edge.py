"""Edge worker speed on one core: frames/s at 640x480 with detection on every processed frame
(motion gate off), and events per person pass, on a synthetic clip of LFW faces (../shared, used
only here) walking across a static scene, one or two at a time."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from visitlens.adapters.onnx_models import load_models
from visitlens.config import Settings
from visitlens.vision.types import as_image

SHARED_LFW = Path(__file__).resolve().parents[3].parent / "shared" / "faces" / "lfw"
PEOPLE = [
    "Tony_Blair", "Hans_Blix", "Jean_Chretien", "Gerhard_Schroeder", "Hugo_Chavez",
    "Andre_Agassi", "Nicole_Kidman", "Tiger_Woods", "Pete_Sampras", "Jennifer_Garner",
    "Bill_Clinton", "Vicente_Fox",
]  # fmt: skip


async def run(settings: Settings) -> dict[str, Any]:
    from visitlens_edge.camera import CameraWorker
    from visitlens_edge.config import EdgeSettings
    from visitlens_edge.synthetic import Pass, render

    detector, _ = load_models(settings)
    passes = []
    for i, person in enumerate(PEOPLE):
        photo = as_image(cv2.imread(str(sorted((SHARED_LFW / person).glob("*.jpg"))[0])))
        # two people at a time in alternate lanes, a new pair every 6 s
        passes.append(Pass(person, photo, 1.0 + (i // 2) * 6.0 + (i % 2), lane=i % 2,
                           leftwards=bool(i % 2)))  # fmt: skip
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(affinity)})  # one core, as a camera process gets
    try:
        with tempfile.TemporaryDirectory(prefix="visitlens-edge-bench-") as tmp:
            clip = Path(tmp) / "clip.avi"
            total = render(clip, passes, detector, fps=10, length_s=passes[-1].start_s + 6)
            capture = cv2.VideoCapture(str(clip))
            frames = []
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(as_image(frame))
            edge = EdgeSettings(
                tenant_id="0b7c1a52-3d1e-4c57-9a7e-2f1d8e6b4a10",  # type: ignore[arg-type]
                site_id="5e2a9c41-7b3d-4f0e-8c6a-1d9b7e3f2a55",  # type: ignore[arg-type]
                cameras=[{"id": "9c4e1b7a-2d5f-4a8e-b1c3-6e7f8a9b0c21", "name": "bench",  # type: ignore[list-item]
                          "source": str(clip), "motion": {"enabled": False}}],
                api={"base_url": "http://127.0.0.1:9", "api_key": "vlk_bench"},  # type: ignore[arg-type]
                models=settings.models,
                models_dir=settings.models_dir,
                queue={"dir": tmp},  # type: ignore[arg-type]
                staff={"enabled": False},  # type: ignore[arg-type]
            )  # fmt: skip
            import threading

            worker = CameraWorker(edge, edge.cameras[0], threading.Event(), None)
            worker.process(frames[0], 0.0)  # warm-up
            per_frame, with_faces, detect_only = [], [], []
            for index, frame in enumerate(frames):
                before = worker.stats.detections
                t0 = time.perf_counter()
                worker.process(frame, index / 10.0)
                elapsed = (time.perf_counter() - t0) * 1000
                per_frame.append(elapsed)
                if worker.stats.detections > before:
                    with_faces.append(elapsed)
            worker.handle(worker.tracker.flush())
            for frame in frames[::5]:
                t0 = time.perf_counter()
                worker.detector.detect(frame)
                detect_only.append((time.perf_counter() - t0) * 1000)
            sent = worker.stats.tracks_sent
            embeddings = worker.tracker.embeddings_computed
            worker.queue.close()
    finally:
        os.sched_setaffinity(0, affinity)
    median = statistics.median(per_frame)
    p95 = statistics.quantiles(per_frame, n=20)[-1]
    return {
        "frames": total,
        "resolution": "640x480",
        "cores": 1,
        "passes": len(passes),
        "events": sent,
        "events_per_pass": round(sent / len(passes), 3),
        "ms_per_frame_median": round(median, 2),
        "ms_per_frame_p95": round(p95, 2),
        "fps_median": round(1000 / median, 1),
        "fps_sustained": round(1000 / statistics.fmean(per_frame), 1),
        "frames_with_faces": len(with_faces),
        "ms_per_frame_with_faces_median": round(statistics.median(with_faces), 2),
        "fps_with_faces": round(1000 / statistics.median(with_faces), 1),
        "detect_ms_median": round(statistics.median(detect_only), 2),
        "embeddings_per_frame": round(embeddings / len(frames), 3),
        "demographics": edge.demographics.enabled,  # gender/age per kept shot, in the figures
        "target_fps": 25,
        "target_met": 1000 / statistics.median(with_faces) >= 25,
    }
