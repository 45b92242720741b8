"""Demographics through our own pipeline on every gender-labelled LFW photo
(../shared/faces/lfw_gender.csv): YuNet finds the face nearest the centre (LFW's person), the
gender and age networks run on chips cut from our landmarks, and the edge's vote (one shot per
photo, the edge's default confidence floor) gives the label.

Figures: balanced gender accuracy over the answered photos, per class, the share answered
"unknown" (no face found counts as unknown), the spread of the age estimate across photos of one
person (LFW has no age labels; a stable estimator gives one person one age), time per face."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import cv2

from visitlens.config import Settings
from visitlens.vision.demographics import DEFAULT_CONFIDENCE_FLOOR, FaceEstimate, vote
from visitlens.vision.types import as_image

_models: Any = None


def _init(settings_json: str) -> None:
    global _models
    from visitlens.adapters.onnx_models import cv2_threads, load_demographics, load_models

    cv2_threads(1)
    settings = Settings.model_validate_json(settings_json)
    detector, _ = load_models(settings)
    _models = (detector, load_demographics(settings.models, settings.models_dir))


def _estimate(path: str) -> tuple[float, float, float] | None:
    """(female probability, expected age, ms for the estimate) of the central face, or None."""
    assert _models is not None
    detector, demographics = _models
    image = as_image(cv2.imread(path))
    faces = detector.detect(image)
    if not faces:
        return None
    h, w = image.shape[:2]
    face = min(
        faces,
        key=lambda d: (
            (d.box[0] + d.box[2] / 2 - w / 2) ** 2 + (d.box[1] + d.box[3] / 2 - h / 2) ** 2
        ),
    )
    started = time.perf_counter()
    estimate = demographics.estimate(image, [face.landmarks])[0]
    return estimate.female, estimate.age, (time.perf_counter() - started) * 1000


async def run(settings: Settings) -> dict[str, Any]:
    from visitlens_dev.bench.lfw import faces_dir, read_csv

    floor = DEFAULT_CONFIDENCE_FLOOR  # the edge's default: the figures describe what it sends
    rows = read_csv("lfw_gender.csv")
    root = faces_dir()
    with ProcessPoolExecutor(2, initializer=_init, initargs=(settings.model_dump_json(),)) as pool:
        results = list(pool.map(_estimate, [str(root / r["path"]) for r in rows], chunksize=32))
    per_class: dict[str, list[int]] = {"female": [0, 0], "male": [0, 0]}  # [right, answered]
    unknown = 0
    ages: dict[str, list[float]] = defaultdict(list)
    timings = []
    for row, result in zip(rows, results, strict=True):
        if result is None:
            unknown += 1
            continue
        female, age, ms = result
        timings.append(ms)
        ages[row["identity"]].append(age)
        label = vote([FaceEstimate(female, age)], [1.0], floor).gender
        if label == "unknown":
            unknown += 1
            continue
        per_class[row["gender"]][1] += 1
        per_class[row["gender"]][0] += label == row["gender"]
    accuracy = {k: right / answered for k, (right, answered) in per_class.items() if answered}
    spreads = [statistics.pstdev(a) for a in ages.values() if len(a) >= 2]
    return {
        "images": len(rows),
        "confidence_floor": floor,
        "gender_female_accuracy": round(accuracy["female"], 4),
        "gender_male_accuracy": round(accuracy["male"], 4),
        "gender_balanced_accuracy": round((accuracy["female"] + accuracy["male"]) / 2, 4),
        "unknown_share": round(unknown / len(rows), 4),
        "female_images": sum(r["gender"] == "female" for r in rows),
        "male_images": sum(r["gender"] == "male" for r in rows),
        "age_identity_sd_years": round(statistics.median(spreads), 2),
        "age_identity_sd_mean_years": round(statistics.fmean(spreads), 2),
        "age_identities": len(spreads),
        "ms_per_face": round(statistics.median(timings), 3),
    }
