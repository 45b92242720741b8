"""Identity decisions as pure functions over plain values: who is this track, which views to keep,
and does this sighting open a visit or extend the open one.

Every number a decision uses comes from :class:`visitlens.config.IdentitySettings`; nothing here
does I/O, so each rule is unit-tested with generated embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

import numpy as np

from visitlens.config import IdentitySettings
from visitlens.ports import PersonKind
from visitlens.vision.types import Floats


@dataclass(frozen=True, slots=True)
class Candidate:
    """One gallery hit for one shot: a stored view of a person and its cosine similarity."""

    person_id: UUID
    kind: PersonKind
    similarity: float


class Outcome(StrEnum):
    STAFF = "staff"
    RETURNING = "returning_customer"
    NEW = "new_customer"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    person_id: UUID | None  # None for NEW: the caller creates the customer
    similarity: float | None  # the evidence for the link, None for NEW
    runner_up: float | None = None  # the best similarity of any other person (ambiguity)
    review: tuple[UUID, float] | None = None
    """For NEW: the closest customer and its score when it fell in the review band — at or above
    the base link threshold but below the gallery's open-set threshold. Too weak to link on (at
    this gallery size a stranger reaches it too often), too strong to forget: the pair becomes a
    duplicates suggestion for a person to decide, never a silent split or merge."""


def best_per_person(shots: Sequence[Sequence[Candidate]]) -> dict[tuple[PersonKind, UUID], float]:
    """For each person hit by any shot of the track: the mean over the shots of the person's best
    view similarity in that shot (a shot whose top hits miss the person counts with its lowest
    hit, an upper bound; a shot without hits is left out). One lucky shot is not enough: with several shots a stranger's score
    falls towards the mean while the person's own stays high (ADR 0012)."""
    per_shot: list[dict[tuple[PersonKind, UUID], float]] = []
    floors: list[float] = []
    for candidates in shots:
        if not candidates:
            continue  # a shot the gallery had nothing for tells nothing
        best: dict[tuple[PersonKind, UUID], float] = {}
        for c in candidates:
            key = (c.kind, c.person_id)
            if c.similarity > best.get(key, -2.0):
                best[key] = c.similarity
        per_shot.append(best)
        floors.append(min(c.similarity for c in candidates))
    people = {key for shot in per_shot for key in shot}
    return {
        key: sum(shot.get(key, floor) for shot, floor in zip(per_shot, floors, strict=True))
        / len(per_shot)
        for key in people
    }


def template(embeddings: Sequence[Floats], qualities: Sequence[float]) -> Floats:
    """A person's (or a track's) template: the quality-weighted mean of their unit embeddings,
    normalised. Averaging views of one face cancels what varies between shots (pose, light,
    blur) and keeps what identifies, so a returning face scores higher against the template
    than against its best single view, while a stranger's score does not rise: measured by
    ``make bench`` (``results.scale``, IJB-B/C build templates the same way). A quality of 0
    still counts a little (``TEMPLATE_QUALITY_FLOOR``): a person whose every view is poor
    keeps a template."""
    if not embeddings:
        raise ValueError("a template needs at least one embedding")
    weights = np.maximum(np.asarray(qualities, np.float32), TEMPLATE_QUALITY_FLOOR)
    mean = np.average(np.stack(embeddings), axis=0, weights=weights)
    norm = float(np.linalg.norm(mean))
    return (mean / norm).astype(np.float32) if norm > 0 else np.asarray(embeddings[0], np.float32)


TEMPLATE_QUALITY_FLOOR = 0.05


def open_set_threshold(
    base: float, comparisons: int, target: float, settings: IdentitySettings
) -> float:
    """The threshold that keeps the chance of a stranger reaching it anywhere in a gallery of
    ``comparisons`` views at ``target``: per view the chance may be ``target / comparisons``;
    the measured false-match chance at the link threshold falls by
    ``false_match_decades_per_unit`` decades per unit of similarity. Never below ``base``."""
    if comparisons <= 0:
        return base
    allowed = target / comparisons
    decades = np.log10(settings.false_match_at_link) - np.log10(allowed)
    raised = settings.customer_link_threshold + decades / settings.false_match_decades_per_unit
    return max(base, float(raised))


def staff_threshold(staff_views: int, settings: IdentitySettings) -> float:
    """The staff threshold for a tenant with ``staff_views`` stored staff views: the one number
    the server's ingest decides with, the staff gallery serves to the edge, and the
    test-recognition screen compares with (the probe found 0.358 served while ingest used 0.3998:
    a pass between the two was dropped as staff by the edge and counted by the server)."""
    return open_set_threshold(
        settings.staff_match_threshold, staff_views, settings.target_false_staff_rate, settings
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds of one decision, for a tenant's current gallery sizes."""

    customer: float
    staff: float

    @classmethod
    def for_gallery(
        cls, customer_views: int, staff_views: int, settings: IdentitySettings
    ) -> Thresholds:
        return cls(
            open_set_threshold(
                settings.customer_link_threshold, customer_views,
                settings.target_false_link_rate, settings,
            ),
            staff_threshold(staff_views, settings),
        )  # fmt: skip


def decide(
    shots: Sequence[Sequence[Candidate]],
    settings: IdentitySettings,
    excluded: frozenset[UUID] = frozenset(),
    thresholds: Thresholds | None = None,
) -> Decision:
    """Staff first (defence in depth behind the edge filter), then the best customer above the
    stricter customer threshold, else a new customer.

    ``excluded`` holds persons this track cannot be: people seen by another face of the same frame
    or another track at the same time (two faces at once are never the same person).
    """
    limits = thresholds or Thresholds(
        settings.customer_link_threshold, settings.staff_match_threshold
    )
    scores = {k: v for k, v in best_per_person(shots).items() if k[1] not in excluded}
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    staff = [(k, s) for k, s in ranked if k[0] is PersonKind.STAFF]
    if staff and staff[0][1] >= limits.staff:
        (_, person), similarity = staff[0]
        return Decision(Outcome.STAFF, person, similarity, _runner_up(ranked, person))
    customers = [(k, s) for k, s in ranked if k[0] is PersonKind.CUSTOMER]
    if customers and customers[0][1] >= limits.customer:
        (_, person), similarity = customers[0]
        return Decision(Outcome.RETURNING, person, similarity, _runner_up(ranked, person))
    review = None
    if customers and customers[0][1] >= settings.customer_link_threshold:
        (_, person), similarity = customers[0]
        review = (person, similarity)
    return Decision(Outcome.NEW, None, None, ranked[0][1] if ranked else None, review)


def _runner_up(ranked: list[tuple[tuple[PersonKind, UUID], float]], person: UUID) -> float | None:
    others = [s for (_, p), s in ranked if p != person]
    return others[0] if others else None


def decide_together(
    tracks: Sequence[Sequence[Sequence[Candidate]]], settings: IdentitySettings
) -> list[Decision]:
    """Decisions for tracks seen at the same time: no person is given to two of them.

    Greedy by evidence: the strongest (track, person) link is settled first, then that person is
    excluded from the other tracks, which are decided again.
    """
    pending = set(range(len(tracks)))
    taken: set[UUID] = set()
    decisions: dict[int, Decision] = {}
    while pending:
        trial = {i: decide(tracks[i], settings, frozenset(taken)) for i in pending}
        linked = [(d.similarity or -2.0, i) for i, d in trial.items() if d.person_id is not None]
        if not linked:
            decisions.update(trial)
            break
        _, winner = max(linked)
        decisions[winner] = trial[winner]
        person = trial[winner].person_id
        assert person is not None
        taken.add(person)
        pending.remove(winner)
    return [decisions[i] for i in range(len(tracks))]


@dataclass(frozen=True, slots=True)
class View:
    """A stored embedding of a person (its id is the Milvus primary key)."""

    view_id: UUID
    embedding: Floats
    quality: float


@dataclass(frozen=True, slots=True)
class ViewUpdate:
    add: tuple[int, ...]  # indexes into the offered shots
    remove: tuple[UUID, ...]  # stored views to drop


def choose_views(
    stored: Sequence[View],
    offered: Sequence[tuple[Floats, float]],
    settings: IdentitySettings,
) -> ViewUpdate:
    """Keep up to ``max_views_per_person`` diverse, good views of a person.

    An offered shot of at least ``min_view_quality`` is kept when it differs from every kept view
    (cosine below ``view_diversity``); at the cap it replaces the worst kept view when it is
    better. A person always keeps
    their best view: when nothing good enough is kept, the best offered shot is kept whatever its
    quality (a customer created from a poor first sighting must be findable at the next visit;
    ADR 0011), and better views replace it as they come.
    """
    kept: list[tuple[UUID | None, Floats, float, int | None]] = [
        (v.view_id, v.embedding, v.quality, None) for v in stored
    ]
    ranked = sorted(enumerate(offered), key=lambda item: item[1][1], reverse=True)
    for index, (embedding, quality) in ranked:
        if quality < settings.min_view_quality:
            continue
        similar = [
            i
            for i, k in enumerate(kept)
            if float(np.dot(embedding, k[1])) >= settings.view_diversity
        ]
        if similar:  # close to a kept view: it only upgrades a poor fallback view
            poorest = min(similar, key=lambda i: kept[i][2])
            if kept[poorest][2] < settings.min_view_quality:
                kept[poorest] = (None, embedding, quality, index)
            continue
        if len(kept) < settings.max_views_per_person:
            kept.append((None, embedding, quality, index))
            continue
        worst = min(range(len(kept)), key=lambda i: kept[i][2])
        if kept[worst][2] < quality:
            kept[worst] = (None, embedding, quality, index)
    if not kept and ranked:  # nothing good enough: the best there is, rather than no view at all
        index, (embedding, quality) = ranked[0]
        kept.append((None, embedding, quality, index))
    added = tuple(sorted(k[3] for k in kept if k[3] is not None))
    survivors = {k[0] for k in kept if k[0] is not None}
    removed = tuple(v.view_id for v in stored if v.view_id not in survivors)
    return ViewUpdate(added, removed)


@dataclass(frozen=True, slots=True)
class OpenVisit:
    visit_id: UUID
    started_at: datetime
    ended_at: datetime


class VisitAction(StrEnum):
    OPEN = "open"
    EXTEND = "extend"


@dataclass(frozen=True, slots=True)
class VisitChange:
    action: VisitAction
    visit_id: UUID | None
    started_at: datetime
    ended_at: datetime


def visit_change(
    latest: OpenVisit | None, first_seen: datetime, last_seen: datetime, window: timedelta
) -> VisitChange:
    """A sighting within ``window`` of the person's latest visit at this site extends it (dwell);
    otherwise it opens a new visit. Late events (replayed from an edge queue) are placed by their
    own times, so the order of arrival does not change the result."""
    if latest is not None and (
        first_seen <= latest.ended_at + window and last_seen >= latest.started_at - window
    ):
        return VisitChange(
            VisitAction.EXTEND,
            latest.visit_id,
            min(latest.started_at, first_seen),
            max(latest.ended_at, last_seen),
        )
    return VisitChange(VisitAction.OPEN, None, first_seen, last_seen)
