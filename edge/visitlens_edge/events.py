"""face.detected events from finished tracks — v3 (with the track's demographic vote) when
demographics are on, else v2 — checked against the shared contract before they are queued (a bug
on the device must not become a poison message on the server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import cv2

from visitlens.adapters.logs import new_traceparent
from visitlens.contracts import MODELS, EventType
from visitlens.vision.demographics import vote
from visitlens_edge.tracking import Finished

MAX_SHOTS = 10


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def source(tenant_id: UUID, site_id: UUID, camera_id: UUID) -> str:
    return f"/tenants/{tenant_id}/sites/{site_id}/cameras/{camera_id}"


def face_detected(
    finished: Finished,
    tenant_id: UUID,
    site_id: UUID,
    camera_id: UUID,
    model_id: str,
    dim: int,
    confidence_floor: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(CloudEvent attributes, data) for one pass; the event id is the track id. With a
    ``confidence_floor`` (demographics on) the shots' estimates are voted into a v3 event."""
    track = finished.track
    track_id = finished.event_track_id
    shots = sorted(track.shots, key=lambda s: s.ts)[:MAX_SHOTS]
    data: dict[str, Any] = {
        "tenant_id": str(tenant_id),
        "site_id": str(site_id),
        "camera_id": str(camera_id),
        "track_id": track_id,
        "first_seen": iso(track.first_seen),
        "last_seen": iso(max(track.last_seen, track.first_seen)),
        "model_id": model_id,
        "dim": dim,
        "frames_seen": max(1, track.frames_seen),
        "shots": [
            {
                "ts": iso(s.ts),
                "embedding": [round(float(v), 7) for v in s.embedding],
                "quality": round(float(s.quality), 4),
                "det_score": round(min(1.0, max(0.0, float(s.detection.score))), 4),
                "det_bbox": [max(0, round(v)) for v in s.detection.box],
                "landmarks": [
                    [round(max(0.0, float(x)), 1), round(max(0.0, float(y)), 1)]
                    for x, y in s.detection.landmarks
                ],
            }
            for s in shots
        ],
        "snapshot_key": None,
    }
    kind = EventType.FACE_DETECTED_V2
    if confidence_floor is not None:
        kind = EventType.FACE_DETECTED_V3
        estimated = [s for s in track.shots if s.estimate is not None]
        result = vote(
            [s.estimate for s in estimated if s.estimate is not None],
            [s.quality for s in estimated],
            confidence_floor,
        )
        data["demographics"] = {
            "gender": result.gender,
            "gender_confidence": result.confidence,
            "age_band": result.age_band,
        }
    MODELS[kind].model_validate(data)
    attributes = {
        "type": kind.value,
        "source": source(tenant_id, site_id, camera_id),
        "id": track_id,
        "time": iso(track.last_seen),
        "datacontenttype": "application/json",
        "dataschema": kind.dataschema,
        "subject": track_id,
        # W3C Distributed Tracing extension: the pass keeps this trace id through ingest, the
        # visit.recorded event and aggregate (`trace=` in every log line on the way)
        "traceparent": new_traceparent(),
    }
    return attributes, data


def snapshot_jpeg(finished: Finished, quality: int) -> tuple[str, str, bytes] | None:
    """(track id, capture time, JPEG) of the best shot's region, when one was kept."""
    best = max(finished.track.shots, key=lambda s: s.quality, default=None)
    if best is None or best.snapshot is None or best.snapshot.size == 0:
        return None
    ok, encoded = cv2.imencode(".jpg", best.snapshot, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        return None
    return finished.event_track_id, iso(best.ts), encoded.tobytes()
