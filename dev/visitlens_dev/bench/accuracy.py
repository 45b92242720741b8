"""Recognition accuracy on ../shared/faces: the official LFW 10-fold protocol, TAR at FAR 1 %, 0.1 %
and 0.01 % over all-vs-all pairs of identities.csv, the calibrated thresholds, and detector recall on
the annotated group photos (IoU ≥ 0.5)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from visitlens.config import Settings
from visitlens.vision.types import as_image
from visitlens_dev.bench import lfw, metrics

FARS = [0.01, 0.001, 0.0001]
CACHE = Path("bench-results") / "cache"


def detector_recall(settings: Settings, upscale_to: int) -> dict[str, Any]:
    """Recall on the annotated photos; ``upscale_to`` > 0 enlarges smaller images first."""
    from visitlens.adapters.onnx_models import load_models

    detector, _ = load_models(settings)

    def detect(image: np.ndarray) -> list[tuple[float, float, float, float]]:
        scale = max(1.0, upscale_to / max(image.shape[:2])) if upscale_to else 1.0
        if scale > 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = as_image(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
        return [tuple(v / scale for v in d.box) for d in detector.detect(as_image(image))]  # type: ignore[misc]

    truth: dict[str, list[tuple[float, float, float, float]]] = defaultdict(list)
    for row in lfw.read_csv("group/annotations_dlib.csv"):
        truth[row["file"]].append(
            (float(row["x"]), float(row["y"]), float(row["w"]), float(row["h"]))
        )
    found_total = hits = annotated = 0
    per_image = {}
    for name, boxes in sorted(truth.items()):
        image = as_image(cv2.imread(str(lfw.faces_dir() / "group" / name)))
        detections = detect(image)
        hit = metrics.recall(boxes, detections)
        per_image[name] = {"annotated": len(boxes), "found": hit, "detections": len(detections)}
        hits += hit
        annotated += len(boxes)
        found_total += len(detections)
    dogs = as_image(cv2.imread(str(lfw.faces_dir() / "group" / "dlib_dogs.jpg")))
    return {
        "annotated_faces": annotated,
        "found": hits,
        "recall": round(hits / annotated, 4),
        "detections_on_annotated_images": found_total,
        "false_positives_on_dogs_jpg": len(detect(dogs)),
        "per_image": per_image,
    }


def _verification(embeddings: np.ndarray, pairs: list[dict[str, str]],
                  index: dict[str, int], label_ids: np.ndarray) -> dict[str, Any]:  # fmt: skip
    a = np.array([index[p["path_a"]] for p in pairs])
    b = np.array([index[p["path_b"]] for p in pairs])
    same = np.array([p["same"] == "1" for p in pairs])
    pair_scores = np.einsum("ij,ij->i", embeddings[a], embeddings[b]).astype(np.float32)
    folds = metrics.ten_fold(pair_scores, same)
    sims = embeddings @ embeddings.T
    upper = np.triu_indices(len(embeddings), k=1)
    pair_same = label_ids[upper[0]] == label_ids[upper[1]]
    all_scores = sims[upper]
    genuine, impostor = all_scores[pair_same], all_scores[~pair_same]
    points = metrics.tar_at_far(genuine, impostor, FARS)
    return {
        "lfw_10_fold": {
            "accuracy_mean": round(folds.accuracy_mean, 5),
            "accuracy_sd": round(folds.accuracy_sd, 5),
            "threshold_mean": round(float(np.mean(folds.thresholds)), 4),
        },
        "all_vs_all": {
            "genuine_pairs": len(genuine),
            "impostor_pairs": len(impostor),
            "genuine_cos_mean": round(float(genuine.mean()), 4),
            "impostor_cos_mean": round(float(impostor.mean()), 4),
            "operating_points": [
                {"far": p.far, "threshold": round(p.threshold, 4), "tar": round(p.tar, 5)}
                for p in points
            ],
        },
        "calibrated_thresholds": {
            "staff_match (FAR 0.1 %)": round(points[1].threshold, 3),
            "customer_link (FAR 0.01 %)": round(points[2].threshold, 3),
        },
    }


async def run(settings: Settings) -> dict[str, Any]:
    started = time.monotonic()
    identities = lfw.read_csv("identities.csv")
    paths = [r["path"] for r in identities]
    plain, flipped, found = lfw.embed_all(settings, paths, CACHE)
    index = {p: i for i, p in enumerate(paths)}
    pairs = lfw.read_csv("pairs.csv")
    labels = np.array([r["identity"] for r in identities])
    _, label_ids = np.unique(labels, return_inverse=True)
    return {
        "description": " ".join((__doc__ or "").split()),
        "images": len(paths),
        "faces_found": int(found.sum()),
        "targets": {"lfw_10_fold": 0.993, "tar_at_far_0.1pct": 0.989, "detector_found": 43},
        "default_pipeline": _verification(plain, pairs, index, label_ids),
        "flip_augmented (models.flip_augment)": _verification(flipped, pairs, index, label_ids),
        "detector": {
            "native_resolution": detector_recall(settings, upscale_to=0),
            "small_images_upscaled_to_640": detector_recall(settings, upscale_to=640),
        },
        "seconds": round(time.monotonic() - started, 1),
    }
