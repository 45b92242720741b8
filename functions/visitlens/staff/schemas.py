"""Bodies of the staff routes (enroll-staff function)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from visitlens.schemas import Input, Name, Output, Patch


class StaffCreate(Input):
    display_name: Name
    site_id: UUID | None = Field(default=None, description="None: works at every site")
    external_ref: str | None = Field(default=None, max_length=200)


class StaffUpdate(Patch):
    nullable = frozenset({"site_id", "external_ref"})
    display_name: Name | None = None
    site_id: UUID | None = None
    external_ref: str | None = Field(default=None, max_length=200)
    active: bool | None = None


class StaffOut(Output):
    id: UUID
    tenant_id: UUID
    site_id: UUID | None
    display_name: str
    external_ref: str | None
    active: bool
    created_at: datetime
    updated_at: datetime


class StaffImageOut(Output):
    id: UUID
    staff_id: UUID
    object_key: str
    is_primary: bool
    quality: float | None
    landmarks: list[list[float]] | None
    embedding_id: UUID | None
    created_at: datetime


class GalleryEntry(Output):
    staff_id: UUID
    view_id: UUID
    embedding: list[float] = Field(description="L2-normalised, length = dim")


class StaffGallery(Output):
    """What an edge worker keeps to drop staff tracks locally; ``version`` grows on every change."""

    version: int
    site_id: UUID
    model_id: str
    dim: int
    staff_match_threshold: float = Field(
        description="the server's staff threshold: the edge uses it, so the two never differ"
    )
    entries: list[GalleryEntry]


class StaffScore(Output):
    staff_id: UUID
    display_name: str
    similarity: float
    match: bool


class RecognitionTest(Output):
    faces: int
    quality: float
    threshold: float
    scores: list[StaffScore]


class Reembedded(Output):
    model_id: str
    images: int
    embedded: int
    rejected: int
