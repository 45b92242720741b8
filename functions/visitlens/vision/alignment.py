"""Five-point similarity alignment to the 112 x 112 ArcFace template (what SFace was trained on)."""

from __future__ import annotations

import cv2
import numpy as np

from visitlens.vision.types import Floats, Image, as_image

ALIGNED_SIZE = 112
ARCFACE_DST: Floats = np.array(
    [
        [38.2946, 51.6963],  # image-left eye
        [73.5318, 51.5014],  # image-right eye
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # image-left mouth corner
        [70.7299, 92.2041],  # image-right mouth corner
    ],
    dtype=np.float32,
)


def similarity_transform(landmarks: Floats) -> Floats:
    """The 2 x 3 rotation + uniform scale + translation that maps ``landmarks`` to the template."""
    matrix, _ = cv2.estimateAffinePartial2D(
        landmarks.astype(np.float32), ARCFACE_DST, method=cv2.LMEDS
    )
    if matrix is None:
        raise ValueError("landmarks are degenerate (no similarity transform)")
    return matrix.astype(np.float32)


def align(image: Image, landmarks: Floats) -> Image:
    """The aligned 112 x 112 BGR face crop."""
    matrix = similarity_transform(landmarks)
    aligned = cv2.warpAffine(
        image, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    return as_image(aligned)
