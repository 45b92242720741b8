"""Open-set identification at chain scale (``results.scale``): does a returning customer stay
recognised as the gallery grows?

NIST-style (FRVT 1:N "investigation" mode turned to open-set identification): galleries of 250,
500 and 1,000 enrolled identities drawn from the *evaluation* half of
``../shared/faces/identity_split.csv``; every enrolled identity with two or more photos keeps one
photo back as its mated probe (never enrolled), the rest (at most ``max_views_per_person``) are
its views; non-mated probes are every photo of an evaluation identity not enrolled. Each
gallery is written to the product's gallery engine (Milvus, through
:class:`visitlens.adapters.gallery.MilvusGallery`), searched with the product's ``top_k``, and the
hits are scored by the product's decision code (:mod:`visitlens.identity.decisions`):

- ``single``: a one-shot probe against each person's best view (``best_per_person``);
- ``template``: the probe against each hit person's template (``decisions.template``);
- ``template_flip``: a two-shot track (the photo and its mirror image, pooled with
  ``decisions.template``) against the templates — what the edge sends with
  ``models.flip_augment``.

FNIR at FPIR f: the threshold is the one at which a share f of non-mated searches reach it; FNIR
is the share of mated searches whose best person is not themselves at or above it. Galleries are
drawn ``REPEATS`` times with different seeds; the figures pool every search, and each says how
many stand behind it.

The impostor tail is fitted on the *calibration* half only (every photo against every other
identity's view, and against every other identity's template): log10 of the chance that one
comparison reaches t is a straight line in t over the measured tail. With it, the threshold that
holds FPIR at 1 % in a scope of V views is projected to 10k, 100k and 1M views, and the
evaluation half's mated scores say what FNIR that threshold costs (``scale-projection.png``).
"""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from visitlens.config import Settings
from visitlens.identity.decisions import Candidate, Thresholds, best_per_person, template
from visitlens.ports import GalleryRow, PersonKind
from visitlens.vision.types import Floats
from visitlens_dev.bench.report import FIGURES

SIZES = (250, 500, 1000)
REPEATS = 5
SEED = 20261206
FPIRS = (0.01, 0.001)
PROJECTED_VIEWS = (1_000, 10_000, 100_000, 1_000_000)
MODES = ("single", "template", "template_flip")
SEARCH_CHUNK = 256
TAIL_RANGE = (1e-5, 1e-3)
"""The per-comparison chances the tail is fitted between: below 1e-5 a calibration half (~7M
impostor pairs) holds too few comparisons, and LFW's few identities filed under two names."""


@dataclass(slots=True)
class Searches:
    """Pooled outcomes of one mode: per mated search, whether its best person was itself and
    at what score; per non-mated search, the best score anyone reached."""

    own: list[bool] = field(default_factory=list)
    mated: list[float] = field(default_factory=list)
    non_mated: list[float] = field(default_factory=list)

    def fnir_at_fpir(self, fpir: float) -> tuple[float, float]:
        """(FNIR, threshold) at the threshold a share ``fpir`` of non-mated searches reach."""
        best = np.sort(np.asarray(self.non_mated))
        index = min(len(best) - 1, int(np.ceil((1 - fpir) * len(best))))
        threshold = float(best[index])
        return self.fnir_at(threshold), threshold

    def fnir_at(self, threshold: float) -> float:
        hit = np.asarray(self.own) & (np.asarray(self.mated) >= threshold)
        return float(1 - hit.mean())

    def fpir_at(self, threshold: float) -> float:
        return float((np.asarray(self.non_mated) >= threshold).mean())


@dataclass(frozen=True, slots=True)
class Faces:
    plain: Floats
    flip: Floats
    by_identity: dict[str, list[int]]
    half: dict[str, str]

    def identities(self, half: str) -> list[str]:
        return sorted(i for i in self.by_identity if self.half.get(i) == half)


def load_faces(settings: Settings) -> Faces:
    from visitlens_dev.bench.accuracy import CACHE
    from visitlens_dev.bench.lfw import embed_all, read_csv

    photos = read_csv("identities.csv")
    plain, flip, found = embed_all(settings, [r["path"] for r in photos], CACHE)
    by_identity: dict[str, list[int]] = {}
    for index, row in enumerate(photos):
        if found[index]:
            by_identity.setdefault(row["identity"], []).append(index)
    half = {r["identity"]: r["half"] for r in read_csv("identity_split.csv")}
    return Faces(plain, flip, by_identity, half)


@dataclass(frozen=True, slots=True)
class Gallery:
    """One drawn gallery: views per enrolled person, mated and non-mated probes (photo indexes)."""

    views: dict[uuid.UUID, list[int]]
    mated: list[tuple[int, uuid.UUID]]
    non_mated: list[int]


def draw(faces: Faces, size: int, rng: random.Random, max_views: int) -> Gallery:
    names = faces.identities("evaluation")
    multi = [n for n in names if len(faces.by_identity[n]) >= 2]
    once = [n for n in names if len(faces.by_identity[n]) == 1]
    members = rng.sample(multi, min(size, len(multi)))
    members += rng.sample(once, size - len(members))
    views: dict[uuid.UUID, list[int]] = {}
    mated: list[tuple[int, uuid.UUID]] = []
    for name in members:
        person = uuid.uuid4()
        photos = list(faces.by_identity[name])
        rng.shuffle(photos)
        if len(photos) >= 2:
            mated.append((photos.pop(), person))
        views[person] = photos[:max_views]
    enrolled = set(members)
    non_mated = [p for n in names if n not in enrolled for p in faces.by_identity[n]]
    return Gallery(views, mated, non_mated)


async def score(
    settings: Settings, faces: Faces, drawn: Gallery, pooled: dict[str, Searches]
) -> None:
    """Enrol ``drawn`` in a tenant of its own, search every probe, score it in every mode."""
    from visitlens.wiring import gallery as gallery_of

    engine = gallery_of(settings)
    tenant = uuid.uuid4()
    try:
        rows = [
            GalleryRow(uuid.uuid4(), tenant, person, PersonKind.CUSTOMER, faces.plain[i])
            for person, photos in drawn.views.items()
            for i in photos
        ]
        await engine.insert(rows)
        await engine.flush()
        templates = {
            person: template([faces.plain[i] for i in photos], [1.0] * len(photos))
            for person, photos in drawn.views.items()
        }  # LFW has no quality scores: equal weights
        probes = [(i, person) for i, person in drawn.mated] + [(i, None) for i in drawn.non_mated]
        top_k = settings.identity.top_k
        for start in range(0, len(probes), SEARCH_CHUNK):
            chunk = probes[start : start + SEARCH_CHUNK]
            vectors = np.stack([faces.plain[i] for i, _ in chunk])
            hits = await engine.search(tenant, vectors, top_k)
            for (photo, own), found in zip(chunk, hits, strict=True):
                candidates = [Candidate(h.person_id, h.kind, h.similarity) for h in found]
                per_person = best_per_person([candidates])
                people = [key[1] for key in per_person]
                outcomes = {"single": _best({p: s for (_, p), s in per_person.items()})}
                for mode, probe in (("template", faces.plain[photo]),
                                    ("template_flip", faces.flip[photo])):  # fmt: skip
                    outcomes[mode] = _best({p: float(np.dot(probe, templates[p])) for p in people})
                for mode, (person, similarity) in outcomes.items():
                    searches = pooled[mode]
                    if own is None:
                        searches.non_mated.append(similarity)
                    else:
                        searches.own.append(person == own)
                        searches.mated.append(similarity)
    finally:
        await engine.close()


def _best(scores: dict[uuid.UUID, float]) -> tuple[uuid.UUID | None, float]:
    if not scores:
        return None, -1.0
    person = max(scores, key=lambda p: scores[p])
    return person, scores[person]


@dataclass(frozen=True, slots=True)
class Tail:
    """log10 P(one impostor comparison ≥ t) = intercept - decades_per_unit * t."""

    intercept: float
    decades_per_unit: float
    comparisons: int

    def chance(self, t: float) -> float:
        return float(10 ** (self.intercept - self.decades_per_unit * t))

    def threshold(self, allowed: float) -> float:
        return float((self.intercept - np.log10(allowed)) / self.decades_per_unit)


def fit_tail(impostor: npt.NDArray[np.float32]) -> Tail:
    """A straight line through log10 of the empirical tail between ``TAIL_RANGE``."""
    ordered = np.sort(impostor)[::-1]
    n = len(ordered)
    lo, hi = TAIL_RANGE
    ranks = np.unique(np.geomspace(lo * n, hi * n, 40).astype(int))
    ranks = ranks[ranks >= 1]
    t = ordered[ranks - 1].astype(np.float64)
    chance = np.log10(ranks / n)
    slope, intercept = np.polyfit(t, chance, 1)
    return Tail(float(intercept), float(-slope), n)


def calibration_tails(faces: Faces, max_views: int) -> tuple[Tail, Tail, float]:
    """Impostor tails per view and per template, and the mean views per person, all measured on
    the calibration half."""
    names = faces.identities("calibration")
    photos = [i for n in names for i in faces.by_identity[n]]
    owner = np.array([k for k, n in enumerate(names) for _ in faces.by_identity[n]])
    vectors = faces.plain[photos]
    per_view = []
    for start in range(0, len(photos), 512):
        block = vectors[start : start + 512] @ vectors.T
        rows = np.arange(start, min(start + 512, len(photos)))
        mask = (owner[rows][:, None] != owner[None, :]) & (rows[:, None] < np.arange(len(photos)))
        per_view.append(block[mask])
    kept = [faces.by_identity[n][:max_views] for n in names]
    templates = np.stack([template([faces.plain[i] for i in v], [1.0] * len(v)) for v in kept])
    scores = vectors @ templates.T
    per_template = scores[owner[:, None] != np.arange(len(names))[None, :]]
    views_per_person = float(np.mean([len(v) for v in kept]))
    return fit_tail(np.concatenate(per_view)), fit_tail(per_template), views_per_person


def projection(
    searches: Searches, tail: Tail, comparisons_per_view: float, fpir: float = 0.01
) -> dict[str, dict[str, float]]:
    out = {}
    for views in PROJECTED_VIEWS:
        comparisons = max(1.0, views * comparisons_per_view)
        threshold = float(tail.threshold(fpir / comparisons))
        out[str(views)] = {
            "threshold": round(threshold, 4),
            "fnir": round(searches.fnir_at(threshold), 4),
        }
    return out


def plot(
    curves: dict[str, dict[str, dict[str, float]]], measured: dict[str, tuple[int, float]]
) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
    for mode, curve in curves.items():
        views = [int(v) for v in curve]
        axes.plot(
            views, [p["fnir"] for p in curve.values()], marker="o", label=f"{mode} (projected)"
        )
    for mode, (enrolled, fnir) in measured.items():
        axes.scatter([enrolled], [fnir], marker="x", s=60, label=f"{mode} (measured, g1000)")
    axes.set_xscale("log")
    axes.set_xlabel("views searched per scope")
    axes.set_ylabel("FNIR at FPIR 1 %")
    axes.set_title(
        "Returning customers missed as the searched gallery grows\n"
        "(SFace; tail fitted on the calibration half, FNIR on the evaluation half)",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _summary(searches: Searches) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mated_searches": len(searches.mated),
        "non_mated_searches": len(searches.non_mated),
    }
    for fpir in FPIRS:
        fnir, threshold = searches.fnir_at_fpir(fpir)
        out[f"fnir_at_fpir_{fpir}"] = round(fnir, 4)
        out[f"threshold_at_fpir_{fpir}"] = round(threshold, 4)
    return out


async def run(settings: Settings) -> dict[str, Any]:
    faces = load_faces(settings)
    max_views = settings.identity.max_views_per_person
    rng = random.Random(SEED)  # noqa: S311 - reproducible draws, not a secret
    pooled: dict[int, dict[str, Searches]] = {}
    views_enrolled: dict[int, list[int]] = {}
    for size in SIZES:
        pooled[size] = {mode: Searches() for mode in MODES}
        for _ in range(REPEATS):
            drawn = draw(faces, size, rng, max_views)
            views_enrolled.setdefault(size, []).append(sum(len(v) for v in drawn.views.values()))
            await score(settings, faces, drawn, pooled[size])
    per_view, per_template, views_per_person = calibration_tails(faces, max_views)
    product = "template_flip" if settings.models.flip_augment else "template"
    result: dict[str, Any] = {
        "description": __doc__.split("\n\n")[0] if __doc__ else "",
        "protocol": {
            "gallery_sizes": list(SIZES),
            "repeats": REPEATS,
            "seed": SEED,
            "top_k": settings.identity.top_k,
            "max_views_per_person": max_views,
            "learned_on": "calibration half (impostor tails)",
            "reported_on": "evaluation half (galleries, mated and non-mated probes)",
            "product_template_mode": product,
        },
        "galleries": {},
    }
    for size in SIZES:
        block: dict[str, Any] = {
            "views_enrolled_mean": round(float(np.mean(views_enrolled[size])), 1)
        }
        for mode in MODES:
            block[mode] = _summary(pooled[size][mode])
        current = Thresholds.for_gallery(size, 0, settings.identity).customer
        block["product_threshold"] = round(current, 4)
        block["product_fpir"] = round(pooled[size][product].fpir_at(current), 4)
        block["product_fnir"] = round(pooled[size][product].fnir_at(current), 4)
        result["galleries"][f"g{size}"] = block
        for mode in MODES:
            label = "single" if mode == "single" else ("template" if mode == product else mode)
            for fpir in FPIRS:
                result[f"fnir_at_fpir_{fpir}_g{size}_{label}"] = block[mode][f"fnir_at_fpir_{fpir}"]
    largest = pooled[SIZES[-1]]
    result["tail"] = {
        name: {
            "log10_chance_intercept": round(tail.intercept, 4),
            "decades_per_unit": round(tail.decades_per_unit, 3),
            "comparisons": tail.comparisons,
            "chance_at_link_threshold": float(
                f"{tail.chance(settings.identity.customer_link_threshold):.3g}"
            ),
        }
        for name, tail in (("per_view", per_view), ("per_template", per_template))
    }
    result["views_per_person_calibration"] = round(views_per_person, 3)
    curves = {
        "single": projection(largest["single"], per_view, 1.0),
        product: projection(largest[product], per_template, 1 / views_per_person),
    }
    result["projection_fnir_at_fpir_0.01"] = curves
    for views in ("10000", "100000", "1000000"):
        result[f"projected_fnir_at_fpir_0.01_{int(views) // 1000}k_views_template"] = curves[
            product
        ][views]["fnir"]
        result[f"projected_fnir_at_fpir_0.01_{int(views) // 1000}k_views_single"] = curves[
            "single"
        ][views]["fnir"]
    # What the product's rule does today: one tenant-wide gallery (no scope), decided on the
    # best single view; the key the issue names is that figure, stated as such.
    result["projected_fnir_at_fpir_0.01_100k_views"] = curves["single"]["100000"]["fnir"]
    result["projected_scope_rule"] = (
        "today: the whole tenant's gallery is one scope (100k views searched), decided on the "
        "best single view; a site group of 5 of a 50-store chain would search ~10k views "
        "(projected_fnir_at_fpir_0.01_10k_views_*)"
    )
    measured = {
        mode: (
            round(float(np.mean(views_enrolled[SIZES[-1]]))),
            result["galleries"][f"g{SIZES[-1]}"][mode]["fnir_at_fpir_0.01"],
        )
        for mode in ("single", product)
    }
    result[FIGURES] = {"scale-projection.png": plot(curves, measured)}
    return result
