"""Typed arrays shared by the vision modules."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

Image: TypeAlias = NDArray[np.uint8]
"""An H x W x 3 BGR image, as OpenCV decodes it."""
Floats: TypeAlias = NDArray[np.float32]


def as_image(value: object) -> Image:
    """An OpenCV result as a typed BGR image (OpenCV's stubs say only "MatLike")."""
    image = np.asarray(value)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 image, got {image.dtype} {image.shape}")
    return image
