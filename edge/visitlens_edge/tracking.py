"""Follow faces across frames: IoU first, embedding similarity to bridge short occlusions.

One track is one person's pass in front of one camera. It keeps its best K shots by quality (with
their embeddings, at least ``min_shot_interval_s`` apart), and is finished when nobody matched it
for ``end_after_s`` or, for long stays, in segments of ``max_duration_s``. Faces are embedded only
when needed: a shot that would enter the best K, or a face that matched no track by position.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from visitlens.vision.demographics import FaceEstimate
from visitlens.vision.detection import Detection
from visitlens.vision.quality import Quality
from visitlens.vision.types import Floats, Image
from visitlens_edge.config import TrackingSettings

Embed = Callable[[Sequence[Image]], Floats]
"""Aligned crops in, L2-normalised embeddings out (one batch)."""
Estimate = Callable[[Image, Sequence[Floats]], list[FaceEstimate]]
"""A frame and faces' landmarks in, one gender/age estimate per face out."""


@dataclass(slots=True)
class Observation:
    """One detected face in one processed frame."""

    detection: Detection
    quality: Quality
    aligned: Image
    frame: Image
    embedding: Floats | None = None


@dataclass(slots=True)
class Shot:
    ts: float
    embedding: Floats
    quality: float
    detection: Detection
    snapshot: Image | None = None  # the frame region around the face, for the best shot only
    estimate: FaceEstimate | None = None  # gender/age of this shot (when demographics are on)


@dataclass(slots=True)
class Track:
    track_id: str
    first_seen: float
    last_seen: float
    box: tuple[float, float, float, float]
    frames_seen: int = 1
    shots: list[Shot] = field(default_factory=list)
    segment: int = 0

    def mean_embedding(self) -> Floats | None:
        if not self.shots:
            return None
        mean = np.mean([s.embedding for s in self.shots], axis=0)
        norm = float(np.linalg.norm(mean))
        return (mean / norm).astype(np.float32) if norm > 0 else None

    def wants_shot(self, ts: float, quality: float, settings: TrackingSettings) -> bool:
        if self.shots and min(abs(ts - s.ts) for s in self.shots) < settings.min_shot_interval_s:
            return False
        if len(self.shots) < settings.best_shots:
            return True
        return quality > min(s.quality for s in self.shots)

    def add_shot(self, shot: Shot, settings: TrackingSettings) -> None:
        self.shots.append(shot)
        self.shots.sort(key=lambda s: -s.quality)
        del self.shots[settings.best_shots :]


@dataclass(frozen=True, slots=True)
class Finished:
    """A pass to report (or drop, when ``usable`` is False)."""

    track: Track
    reason: str  # "ended" | "segment" | "flush"

    def usable(self, settings: TrackingSettings) -> bool:
        """Seen often enough, with at least one recognisable shot."""
        return bool(self.track.shots) and self.track.frames_seen >= settings.min_frames

    @property
    def event_track_id(self) -> str:
        track = self.track
        return track.track_id if track.segment == 0 else f"{track.track_id}.{track.segment}"


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def snapshot_region(frame: Image, box: tuple[float, float, float, float], margin: float) -> Image:
    x, y, w, h = box
    height, width = frame.shape[:2]
    x0 = int(max(0, x - margin * w))
    y0 = int(max(0, y - margin * h))
    x1 = int(min(width, x + w + margin * w))
    y1 = int(min(height, y + h + margin * h))
    return frame[y0:y1, x0:x1].copy()


class Tracker:
    def __init__(
        self,
        camera: str,
        settings: TrackingSettings,
        embed: Embed,
        snapshot_margin: float | None,
        estimate: Estimate | None = None,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self._embed = embed
        self._estimate = estimate
        self._margin = snapshot_margin
        self.active: list[Track] = []
        self._ids = itertools.count(1)
        self._run = uuid.uuid4().hex[:8]  # track ids stay unique across restarts
        self.embeddings_computed = 0

    def _new_id(self) -> str:
        return f"{self.camera}:{self._run}:{next(self._ids):06d}"

    @property
    def busy(self) -> bool:
        return bool(self.active)

    def step(self, ts: float, observations: Sequence[Observation]) -> list[Finished]:
        """Associate one frame's faces with the tracks; return the passes that are over."""
        finished = self._expire(ts)
        visible = [t for t in self.active if ts - t.last_seen <= self.settings.lost_after_s]
        matched_tracks: dict[int, Track] = {}
        if visible and observations:
            cost = np.array(
                [[1.0 - iou(t.box, o.detection.box) for o in observations] for t in visible]
            )
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols, strict=True):
                if 1.0 - cost[r, c] >= self.settings.iou_threshold:
                    matched_tracks[int(c)] = visible[int(r)]
        unmatched = [i for i in range(len(observations)) if i not in matched_tracks]
        # Faces without a positional match: embed them and try the recently lost tracks.
        lost = [t for t in self.active if t not in matched_tracks.values() and t.shots]
        usable_unmatched = [i for i in unmatched if observations[i].quality.usable]
        if lost and usable_unmatched:
            self._ensure_embeddings([observations[i] for i in usable_unmatched])
            candidates = [(t, t.mean_embedding()) for t in lost]
            for i in usable_unmatched:
                vector = observations[i].embedding
                assert vector is not None
                best, best_sim = None, self.settings.reid_similarity
                for track, mean in candidates:
                    if mean is None or track in matched_tracks.values():
                        continue
                    similarity = float(mean @ vector)
                    if similarity >= best_sim:
                        best, best_sim = track, similarity
                if best is not None:
                    matched_tracks[i] = best
        for i, obs in enumerate(observations):
            existing = matched_tracks.get(i)
            if existing is None:
                created = Track(self._new_id(), ts, ts, obs.detection.box)
                self.active.append(created)
                matched_tracks[i] = created
            else:
                existing.last_seen = ts
                existing.box = obs.detection.box
                existing.frames_seen += 1
        # Shots: usable faces that would enter their track's best K, embedded in one batch.
        wanted = [
            (i, matched_tracks[i])
            for i, obs in enumerate(observations)
            if obs.quality.usable
            and matched_tracks[i].wants_shot(ts, obs.quality.score, self.settings)
        ]
        self._ensure_embeddings([observations[i] for i, _ in wanted])
        for i, track in wanted:
            obs = observations[i]
            assert obs.embedding is not None
            was_best = track.shots[0].quality if track.shots else -1.0
            shot = Shot(ts, obs.embedding, obs.quality.score, obs.detection)
            if self._margin is not None and obs.quality.score > was_best:
                shot.snapshot = snapshot_region(obs.frame, obs.detection.box, self._margin)
            track.add_shot(shot, self.settings)
            if self._estimate is not None and shot in track.shots:  # kept: worth estimating
                shot.estimate = self._estimate(obs.frame, [obs.detection.landmarks])[0]
            if track.shots[0] is shot:  # only the best shot keeps its snapshot
                for other in track.shots[1:]:
                    other.snapshot = None
        finished.extend(self._segments(ts))
        return finished

    def tick(self, ts: float) -> list[Finished]:
        """A frame without detection (static scene): only time passes."""
        return self._expire(ts)

    def flush(self) -> list[Finished]:
        """Every open track, e.g. at shutdown or at the end of a file."""
        done = [Finished(t, "flush") for t in self.active]
        self.active = []
        return done

    def _expire(self, ts: float) -> list[Finished]:
        ended = [t for t in self.active if ts - t.last_seen > self.settings.end_after_s]
        if not ended:
            return []
        self.active = [t for t in self.active if t not in ended]
        return [Finished(t, "ended") for t in ended]

    def _segments(self, ts: float) -> list[Finished]:
        """A long stay is reported every ``max_duration_s``; the track goes on as a new segment."""
        out = []
        for track in self.active:
            if ts - track.first_seen >= self.settings.max_duration_s and track.shots:
                done = Track(
                    f"{track.track_id}.{track.segment}",
                    track.first_seen,
                    track.last_seen,
                    track.box,
                    track.frames_seen,
                    list(track.shots),
                    track.segment,
                )
                out.append(Finished(done, "segment"))
                track.segment += 1
                track.first_seen = ts
                track.frames_seen = 0
                track.shots = []
        return out

    def _ensure_embeddings(self, observations: Sequence[Observation]) -> None:
        todo = [o for o in observations if o.embedding is None]
        if not todo:
            return
        vectors = self._embed([o.aligned for o in todo])
        self.embeddings_computed += len(todo)
        for obs, vector in zip(todo, vectors, strict=True):
            obs.embedding = vector
