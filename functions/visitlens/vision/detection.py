"""YuNet post-processing: anchor-free decoding of the three stride heads, then NMS.

YuNet predicts, for every cell of the stride-8/16/32 grids, a class and an objectness score, a box
(centre offset in cells, log width/height) and five landmarks (offsets in cells). The score is
sqrt(cls * obj), as OpenCV's FaceDetectorYN computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from visitlens.vision.types import Floats, Image

STRIDES = (8, 16, 32)
PAD_MULTIPLE = 32
"""YuNet's input height and width must be multiples of its largest stride."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One face in frame pixels: box (x, y, w, h), score in 0..1, five landmarks (x, y)."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: Floats  # 5 x 2: eyes (image-left, image-right), nose tip, mouth corners


def to_blob(image: Image) -> tuple[Floats, tuple[int, int]]:
    """BGR uint8 H x W x 3 → 1 x 3 x H' x W' float32, zero-padded bottom/right to /32."""
    height, width = image.shape[:2]
    padded_h = -(-height // PAD_MULTIPLE) * PAD_MULTIPLE
    padded_w = -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
    blob = np.zeros((1, 3, padded_h, padded_w), np.float32)
    blob[0, :, :height, :width] = image.transpose(2, 0, 1)
    return blob, (padded_h, padded_w)


def decode(
    outputs: dict[str, Floats],
    padded: tuple[int, int],
    frame: tuple[int, int],
    score_threshold: float,
    nms_iou: float,
    max_faces: int,
) -> list[Detection]:
    """Turn YuNet's twelve outputs into detections inside the original ``frame`` (height, width)."""
    _, padded_w = padded
    boxes, scores, marks = [], [], []
    for stride in STRIDES:
        cols = padded_w // stride
        cls = outputs[f"cls_{stride}"].reshape(-1)
        obj = outputs[f"obj_{stride}"].reshape(-1)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        bbox = outputs[f"bbox_{stride}"].reshape(-1, 4)[keep]
        kps = outputs[f"kps_{stride}"].reshape(-1, 10)[keep]
        col = (keep % cols).astype(np.float32)
        row = (keep // cols).astype(np.float32)
        cx = (col + bbox[:, 0]) * stride
        cy = (row + bbox[:, 1]) * stride
        bw = np.exp(bbox[:, 2]) * stride
        bh = np.exp(bbox[:, 3]) * stride
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1))
        scores.append(score[keep])
        lm = kps.reshape(-1, 5, 2).copy()
        lm[:, :, 0] = (lm[:, :, 0] + col[:, None]) * stride
        lm[:, :, 1] = (lm[:, :, 1] + row[:, None]) * stride
        marks.append(lm)
    if not boxes:
        return []
    all_boxes = np.concatenate(boxes)
    all_scores = np.concatenate(scores)
    all_marks = np.concatenate(marks)
    kept = cv2.dnn.NMSBoxes(
        all_boxes.tolist(), all_scores.tolist(), score_threshold, nms_iou, top_k=max_faces
    )
    height, width = frame
    out = []
    for index in np.asarray(kept).reshape(-1)[:max_faces]:
        x, y, w, h = (float(v) for v in all_boxes[index])
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(width), x + w), min(float(height), y + h)
        if x1 <= x0 or y1 <= y0:
            continue
        out.append(
            Detection(
                box=(x0, y0, x1 - x0, y1 - y0),
                score=float(all_scores[index]),
                landmarks=all_marks[index].astype(np.float32),
            )
        )
    out.sort(key=lambda d: d.score, reverse=True)
    return out
