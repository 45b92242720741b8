"""Image bytes → BGR array, with the limits an operator-facing upload needs."""

from __future__ import annotations

import cv2
import numpy as np

from visitlens.errors import InvalidInput
from visitlens.vision.types import Image, as_image

MAX_PIXELS = 40_000_000
"""Anything larger is refused before decoding its pixels (a decompression bomb guard)."""


def decode_image(data: bytes, field: str = "image") -> Image:
    if not data:
        raise InvalidInput("empty image", field=field)
    buffer = np.frombuffer(data, np.uint8)
    header = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if header is None:
        raise InvalidInput("not a decodable image (JPEG, PNG, WebP, BMP …)", field=field)
    if header.shape[0] * header.shape[1] * 64 > MAX_PIXELS:
        raise InvalidInput(f"image larger than {MAX_PIXELS} pixels", field=field)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.ndim != 3:
        raise InvalidInput("not a decodable colour image", field=field)
    return as_image(image)
