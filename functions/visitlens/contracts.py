"""Pydantic mirrors of ``events/*.schema.json``: the ``data`` of every CloudEvent visitlens sends.

The JSON Schemas are the wire contract; these models match them field for field (a contract test
fails on drift) and add the checks JSON Schema cannot express: an embedding's length equals ``dim``
and its L2 norm is 1, times are ordered.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from visitlens.errors import InvalidInput
from visitlens.validation import Instant, from_validation_error, refuse_nul

SCHEMA_BASE = "https://schemas.visitlens.dev/events/"
NORM_TOLERANCE = 0.01
"""An embedding whose L2 norm is further than this from 1 was not normalised by the sender."""

Unit = Annotated[float, Field(ge=0, le=1)]
BBox = Annotated[
    list[Annotated[int, Field(ge=0, le=16384)]],
    Field(min_length=4, max_length=4, description="[x, y, width, height] in pixels"),
]
Point = Annotated[list[Annotated[float, Field(ge=0, le=16384)]], Field(min_length=2, max_length=2)]
Landmarks = Annotated[list[Point], Field(min_length=5, max_length=5)]
Embedding = Annotated[
    list[Annotated[float, Field(ge=-1, le=1)]], Field(min_length=64, max_length=1024)
]
ModelId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
ObjectKey = Annotated[str | None, Field(min_length=1, max_length=1024)]
AgeBand = Literal["0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65-120"]
"""The report bands, the only ones the edge's estimate produces
(``visitlens.vision.demographics.AGE_BANDS``; a unit test keeps the two equal)."""

SEED_MODEL_ID = "sface-2021dec"
"""face.detected v1 carries no model id: by contract its embeddings are SFace 2021dec, 128-D."""


PING_TYPE = "dev.knative.sources.ping"
"""A cron tick (Knative PingSource, or the local gateway's scheduler)."""
MINIO_TYPE_PREFIX = "io.minio."
"""A MinIO bucket notification, as the minio-bridge converts it (``io.minio.s3:ObjectCreated:Put``)."""


class EventType(StrEnum):
    FACE_DETECTED_V1 = "com.visitlens.face.detected.v1"
    FACE_DETECTED_V2 = "com.visitlens.face.detected.v2"
    FACE_DETECTED_V3 = "com.visitlens.face.detected.v3"
    VISIT_RECORDED_V1 = "com.visitlens.visit.recorded.v1"
    CUSTOMER_PROFILE_V1 = "com.visitlens.customer.profile.v1"
    STAFF_ENROLLED_V1 = "com.visitlens.staff.enrolled.v1"
    STAFF_RECOGNIZED_V1 = "com.visitlens.staff.recognized.v1"
    PERSONS_MERGED_V1 = "com.visitlens.persons.merged.v1"
    RETENTION_PURGED_V1 = "com.visitlens.retention.purged.v1"

    @property
    def schema_name(self) -> str:
        """``face.detected.v2`` for ``com.visitlens.face.detected.v2``."""
        return self.value.removeprefix("com.visitlens.")

    @property
    def dataschema(self) -> str:
        return f"{SCHEMA_BASE}{self.schema_name}.schema.json"


class EventData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_unit_norm(vector: list[float], field: str) -> None:
    if not all(math.isfinite(x) for x in vector):
        raise ValueError(f"{field}: not finite")
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise ValueError(f"{field}: L2 norm {norm:.3f} is not 1 (embeddings are L2-normalised)")


class FaceDetectedV1(EventData):
    """One face in one frame (the seed's shape)."""

    tenant_id: UUID
    site_id: UUID
    camera_id: UUID
    ts: Instant
    embedding: Embedding
    det_bbox: BBox
    det_score: Unit | None = None
    is_staff_local: bool
    snapshot_url: ObjectKey = None

    @model_validator(mode="after")
    def _normalised(self) -> FaceDetectedV1:
        _check_unit_norm(self.embedding, "embedding")
        return self


class Shot(EventData):
    ts: Instant
    embedding: Embedding
    quality: Unit
    det_score: Unit
    det_bbox: BBox
    landmarks: Landmarks | None = None


class FaceDetectedV2(EventData):
    """One person's pass in front of one camera: a track with its best shots."""

    tenant_id: UUID
    site_id: UUID
    camera_id: UUID
    track_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    first_seen: Instant
    last_seen: Instant
    model_id: ModelId
    dim: int = Field(ge=64, le=1024)
    frames_seen: int = Field(ge=1, le=1_000_000)
    shots: list[Shot] = Field(min_length=1, max_length=10)
    snapshot_key: ObjectKey = None

    @model_validator(mode="after")
    def _consistent(self) -> FaceDetectedV2:
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        for i, shot in enumerate(self.shots):
            if len(shot.embedding) != self.dim:
                raise ValueError(
                    f"shots.{i}.embedding has {len(shot.embedding)} values, dim is {self.dim}"
                )
            if not self.first_seen <= shot.ts <= self.last_seen:
                raise ValueError(f"shots.{i}.ts lies outside first_seen..last_seen")
            _check_unit_norm(shot.embedding, f"shots.{i}.embedding")
        return self


class DemographicsEstimate(EventData):
    """The edge's vote over a track's shots: only a label, its confidence and an age band."""

    gender: Literal["female", "male", "unknown"]
    gender_confidence: Unit
    age_band: AgeBand | None


class FaceDetectedV3(FaceDetectedV2):
    """v2 plus the track's demographic estimate (absent when the edge does not estimate)."""

    demographics: DemographicsEstimate | None = None


class VisitRecordedV1(EventData):
    tenant_id: UUID
    site_id: UUID
    camera_id: UUID
    visit_id: UUID
    customer_id: UUID
    sighting_id: UUID
    started_at: Instant
    ended_at: Instant
    is_new_customer: bool
    opened_visit: bool
    similarity: float | None = Field(ge=-1, le=1)
    dwell_s: float = Field(ge=0)
    visit_count: int = Field(ge=1)


class CustomerProfileV1(EventData):
    tenant_id: UUID
    customer_id: UUID
    first_seen_at: Instant
    last_seen_at: Instant
    visit_count: int = Field(ge=0)
    first_site_id: UUID | None = None
    gender: Literal["female", "male", "unknown"] | None = None
    age_band: AgeBand | None = None


class StaffEnrolledV1(EventData):
    tenant_id: UUID
    staff_id: UUID
    site_id: UUID | None = None
    image_id: UUID
    embedding_id: UUID | None = None
    model_id: ModelId
    change: Literal["added", "removed", "reembedded"]
    gallery_version: int = Field(ge=1)


class StaffRecognizedV1(EventData):
    """The reply to a pass that was a staff member's: it counts nowhere."""

    tenant_id: UUID
    site_id: UUID
    camera_id: UUID
    sighting_id: UUID
    staff_id: UUID | None
    similarity: float | None = Field(ge=-1, le=1)
    first_seen: Instant
    last_seen: Instant


class MovedCounts(EventData):
    visits: int = Field(ge=0)
    sightings: int = Field(ge=0)
    embeddings: int = Field(ge=0)


class PersonsMergedV1(EventData):
    tenant_id: UUID
    merge_id: UUID
    kept_id: UUID
    merged_id: UUID
    person_kind: Literal["customer", "staff"]
    operation: Literal["merge", "unmerge"]
    moved: MovedCounts
    actor_id: UUID


class RetentionPurgedV1(EventData):
    tenant_id: UUID
    run_id: UUID
    bucket: str = Field(min_length=3, max_length=63)
    older_than: Instant
    objects_deleted: int = Field(ge=0)
    pointers_cleared: int = Field(ge=0)
    survivors: int = Field(ge=0)


MODELS: dict[EventType, type[EventData]] = {
    EventType.FACE_DETECTED_V1: FaceDetectedV1,
    EventType.FACE_DETECTED_V2: FaceDetectedV2,
    EventType.FACE_DETECTED_V3: FaceDetectedV3,
    EventType.VISIT_RECORDED_V1: VisitRecordedV1,
    EventType.CUSTOMER_PROFILE_V1: CustomerProfileV1,
    EventType.STAFF_ENROLLED_V1: StaffEnrolledV1,
    EventType.STAFF_RECOGNIZED_V1: StaffRecognizedV1,
    EventType.PERSONS_MERGED_V1: PersonsMergedV1,
    EventType.RETENTION_PURGED_V1: RetentionPurgedV1,
}


def canonical_json(data: object) -> str:
    """``data`` as canonical JSON (sorted keys, no spaces, no NaN), or :class:`InvalidInput`."""
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("data is not plain JSON", field="data") from exc
    except RecursionError as exc:
        raise InvalidInput("data is nested too deeply", field="data") from exc


def parse_data(event_type: str, data: object, canonical: str | None = None) -> EventData:
    """Validate an event's ``data`` for its type; every problem at once, as :class:`InvalidInput`.
    ``canonical``: the data's :func:`canonical_json` if the caller has it already."""
    try:
        model = MODELS[EventType(event_type)]
    except ValueError as exc:
        raise InvalidInput(f"unknown event type {event_type!r}", field="type") from exc
    refuse_nul(data, "data")
    raw = canonical if canonical is not None else canonical_json(data)
    try:
        # Strict JSON mode: the wire is JSON, so "yes" is not a boolean and "5" is not a number.
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise from_validation_error(exc, "data") from exc
