"""Open-set identification on LFW: how the false-merge risk grows with the size of a tenant's
gallery (the question every new visitor asks the gallery: "am I anyone you know?").

Gallery: one photo of each of N identities that have at least two photos. Mated probes: another
photo of a gallery identity. Non-mated probes: photos of identities *not* in the gallery (every
LFW identity outside it serves as a distractor). For each N:

- FPIR(t): the share of non-mated probes whose best gallery similarity reaches t — a stranger
  linked to someone (a false merge for a new visitor);
- DIR(t): the share of mated probes whose best match is their own identity at or above t — a
  returning visitor recognised;
- at the product's link threshold (``identity.customer_link_threshold``), and at the thresholds
  that hold FPIR at 1 % and 0.1 %.

Embeddings come from our own pipeline (the accuracy benchmark's cache)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from visitlens.config import Settings

GALLERY_SIZES = (100, 300, 1000)
SEED = 20261130


def _rates(
    gallery: np.ndarray, mated: np.ndarray, mated_ids: np.ndarray, strangers: np.ndarray, t: float
) -> tuple[float, float]:
    best_stranger = (strangers @ gallery.T).max(axis=1)
    scores = mated @ gallery.T
    top = scores.argmax(axis=1)
    top_sim = scores.max(axis=1)
    fpir = float((best_stranger >= t).mean())
    dir_ = float(((top == mated_ids) & (top_sim >= t)).mean())
    return fpir, dir_


async def run(settings: Settings) -> dict[str, Any]:
    from visitlens_dev.bench.accuracy import CACHE
    from visitlens_dev.bench.lfw import embed_all, read_csv

    photos = read_csv("identities.csv")
    paths = [r["path"] for r in photos]
    plain, _, found = embed_all(settings, paths, CACHE)  # the accuracy benchmark's cache
    by_identity: dict[str, list[int]] = {}
    for index, row in enumerate(photos):
        if found[index]:
            by_identity.setdefault(row["identity"], []).append(index)
    rng = random.Random(SEED)  # noqa: S311 - a reproducible split, not a secret
    multi = sorted(i for i, idx in by_identity.items() if len(idx) >= 2)
    threshold = settings.identity.customer_link_threshold
    curve = []
    for size in (*GALLERY_SIZES, len(multi)):
        members = rng.sample(multi, min(size, len(multi)))
        member_set = set(members)
        gallery = np.stack([plain[by_identity[m][0]] for m in members])
        mated = np.stack([plain[by_identity[m][1]] for m in members])
        mated_ids = np.arange(len(members))
        strangers = np.stack(
            [plain[idx[0]] for ident, idx in by_identity.items() if ident not in member_set]
        )
        best_stranger = np.sort((strangers @ gallery.T).max(axis=1))
        point: dict[str, Any] = {"gallery": len(members), "strangers": len(strangers)}
        fpir, dir_ = _rates(gallery, mated, mated_ids, strangers, threshold)
        point["link_threshold"] = threshold
        point["fpir_at_link_threshold"] = round(fpir, 5)
        point["dir_at_link_threshold"] = round(dir_, 4)
        for label, target in (("1pct", 0.01), ("0.1pct", 0.001)):
            t = float(
                best_stranger[
                    min(len(best_stranger) - 1, int(np.ceil((1 - target) * len(best_stranger))))
                ]
            )
            point[f"threshold_fpir_{label}"] = round(t, 4)
            point[f"dir_at_fpir_{label}"] = round(
                _rates(gallery, mated, mated_ids, strangers, t)[1], 4
            )
        curve.append(point)
    # FPIR grows with the gallery as 1 - (1 - p)^N for a per-comparison false-match rate p:
    # fitted on the largest gallery, extrapolated to a chain's sizes.
    largest = curve[-1]
    p = 1 - (1 - largest["fpir_at_link_threshold"]) ** (1 / largest["gallery"])
    extrapolated = {str(n): round(1 - (1 - p) ** n, 4) for n in (10_000, 100_000, 1_000_000)}
    return {
        "curve": curve,
        "per_comparison_false_match": float(f"{p:.3g}"),
        "fpir_at_link_threshold_extrapolated": extrapolated,
    }
