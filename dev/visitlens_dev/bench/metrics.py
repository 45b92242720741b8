"""Verification metrics (pure numpy): the LFW 10-fold protocol, TAR at fixed FAR, detector recall."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Scores = NDArray[np.float32]
Labels = NDArray[np.bool_]


def best_threshold(scores: Scores, same: Labels) -> float:
    """The cut that maximises accuracy on (scores, same), searched over every observed score."""
    order = np.argsort(scores)
    s, y = scores[order], same[order]
    # Predict "same" for scores >= t. For t = s[i]: correct = negatives below i + positives from i.
    negatives_below = np.concatenate([[0], np.cumsum(~y)])
    positives_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    correct = negatives_below + positives_from
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


@dataclass(frozen=True, slots=True)
class FoldResult:
    accuracy_mean: float
    accuracy_sd: float
    thresholds: list[float]
    fold_accuracies: list[float]


def ten_fold(scores: Scores, same: Labels, folds: int = 10) -> FoldResult:
    """LFW View-2 protocol: pairs are in fold order; pick the threshold on 9 folds, test on 1."""
    if len(scores) % folds:
        raise ValueError("pairs do not split into equal folds")
    size = len(scores) // folds
    accuracies, thresholds = [], []
    for k in range(folds):
        test = np.zeros(len(scores), bool)
        test[k * size : (k + 1) * size] = True
        threshold = best_threshold(scores[~test], same[~test])
        predicted = scores[test] >= threshold
        accuracies.append(float(np.mean(predicted == same[test])))
        thresholds.append(threshold)
    return FoldResult(float(np.mean(accuracies)), float(np.std(accuracies)), thresholds, accuracies)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    far: float
    threshold: float
    tar: float


def tar_at_far(genuine: Scores, impostor: Scores, fars: list[float]) -> list[OperatingPoint]:
    """For each FAR, the threshold that lets that share of impostors through, and the TAR there."""
    impostor_sorted = np.sort(impostor)
    points = []
    for far in fars:
        allowed = int(np.floor(far * len(impostor_sorted)))
        index = len(impostor_sorted) - allowed - 1
        threshold = float(impostor_sorted[max(index, 0)]) + 1e-6
        points.append(OperatingPoint(far, threshold, float(np.mean(genuine >= threshold))))
    return points


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def recall(
    truth: list[tuple[float, float, float, float]],
    found: list[tuple[float, float, float, float]],
    min_iou: float = 0.5,
) -> int:
    """How many ground-truth boxes a distinct detection covers with IoU ≥ ``min_iou`` (greedy)."""
    used: set[int] = set()
    hits = 0
    for box in truth:
        candidates = [(iou(box, f), j) for j, f in enumerate(found) if j not in used]
        best = max(candidates, default=(0.0, -1))
        if best[0] >= min_iou:
            used.add(best[1])
            hits += 1
    return hits
