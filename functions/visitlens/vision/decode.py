"""Image bytes → BGR array, with the limits an operator-facing upload needs."""

from __future__ import annotations

import cv2
import numpy as np

from visitlens.errors import InvalidInput
from visitlens.vision.types import Image, as_image

MAX_PIXELS = 40_000_000
"""Anything larger is refused before decoding its pixels (a decompression bomb guard)."""
MIN_SIDE = 16
"""Narrower or lower images hold no detectable face (and the detector cannot run on them)."""
MAX_SIDE = 2048
"""Larger images are scaled down before detection: memory and time of the native-resolution
detector grow with the pixel count (an 8000x5000 upload took 1.6 GB), and a face needs far
fewer pixels than that."""


def decode_image(data: bytes, field: str = "image") -> Image:
    if not data:
        raise InvalidInput("empty image", field=field)
    buffer = np.frombuffer(data, np.uint8)
    try:
        header = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    except cv2.error as exc:  # OpenCV cannot reduce a side under 8 px by 8
        raise InvalidInput(
            f"image too small (at least {MIN_SIDE} pixels per side)", field=field
        ) from exc
    if header is None:
        raise InvalidInput("not a decodable image (JPEG, PNG, WebP, BMP …)", field=field)
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise InvalidInput(f"image larger than {MAX_PIXELS} pixels", field=field)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        raise InvalidInput("not a decodable colour image", field=field)
    height, width = image.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InvalidInput(
            f"image of {width}x{height} pixels is too small (at least {MIN_SIDE} per side)",
            field=field,
        )
    return as_image(bounded(image))


def bounded(image: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """``image`` scaled down (area interpolation) so that its longer side is at most
    ``max_side``; unchanged when it already is."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
