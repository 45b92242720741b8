"""Is a detected face good enough to recognise? A score in 0..1 and the reasons it is not.

Thresholds are about what the recogniser can use: SFace needs ~40 px between the outer eye
landmarks' span to see identity; blur is judged on the aligned crop so that it is scale-free;
pose is estimated from where the nose tip sits between the eyes and mouth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from visitlens.vision.detection import Detection
from visitlens.vision.types import Image

MIN_FACE_PX = 40
"""Shorter box sides than this carry too little identity for a 112 px recogniser."""
MIN_EYE_DISTANCE_PX = 16
BLUR_VARIANCE_MIN = 40.0
"""Variance of the Laplacian of the aligned grey crop below which the face counts as blurred."""
MAX_YAW = 0.45
"""|nose offset from the eye midline| / eye distance; ~0.45 is roughly 40-45 degrees of yaw."""
MAX_ROLL_DEG = 35.0
EDGE_MARGIN_PX = 2
MIN_DETECTOR_SCORE = 0.75


class Reason(StrEnum):
    TOO_SMALL = "too_small"
    BLURRED = "blurred"
    EXTREME_POSE = "extreme_pose"
    CLIPPED = "clipped_at_edge"
    LOW_SCORE = "low_detector_score"


@dataclass(frozen=True, slots=True)
class Quality:
    score: float
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    sharpness: float = 0.0
    yaw: float = 0.0
    roll_deg: float = 0.0

    @property
    def usable(self) -> bool:
        return not self.reasons


def _pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(eye distance px, yaw ratio, roll degrees) from the five landmarks."""
    left_eye, right_eye, nose = landmarks[0], landmarks[1], landmarks[2]
    eye_vector = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_vector))
    if eye_distance < 1e-3:
        return 0.0, 1.0, 0.0
    roll = float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0])))
    mid = (left_eye + right_eye) / 2
    # Signed distance of the nose from the line through the eye midpoint, perpendicular to the eyes.
    along = float(np.dot(nose - mid, eye_vector / eye_distance))
    return eye_distance, along / eye_distance, roll


def sharpness(aligned: Image) -> float:
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(detection: Detection, frame_shape: tuple[int, ...], aligned: Image) -> Quality:
    """Score one face (1 = frontal, sharp, large, fully visible) and list what is wrong with it."""
    height, width = frame_shape[:2]
    x, y, w, h = detection.box
    eye_distance, yaw, roll = _pose(detection.landmarks)
    sharp = sharpness(aligned)
    reasons = []
    if min(w, h) < MIN_FACE_PX or eye_distance < MIN_EYE_DISTANCE_PX:
        reasons.append(Reason.TOO_SMALL)
    if sharp < BLUR_VARIANCE_MIN:
        reasons.append(Reason.BLURRED)
    if abs(yaw) > MAX_YAW or abs(roll) > MAX_ROLL_DEG:
        reasons.append(Reason.EXTREME_POSE)
    if (
        x <= EDGE_MARGIN_PX
        or y <= EDGE_MARGIN_PX
        or x + w >= width - EDGE_MARGIN_PX
        or y + h >= height - EDGE_MARGIN_PX
    ):
        reasons.append(Reason.CLIPPED)
    if detection.score < MIN_DETECTOR_SCORE:
        reasons.append(Reason.LOW_SCORE)
    size_term = min(1.0, min(w, h) / (2 * MIN_FACE_PX))
    sharp_term = min(1.0, sharp / (4 * BLUR_VARIANCE_MIN))
    pose_term = max(0.0, 1.0 - abs(yaw) / (2 * MAX_YAW)) * max(0.0, 1 - abs(roll) / 90)
    score = float(np.clip(size_term * sharp_term * pose_term * detection.score, 0.0, 1.0))
    if reasons:
        score = min(score, 0.49)
    return Quality(round(score, 4), tuple(reasons), round(sharp, 2), round(yaw, 4), round(roll, 2))
