"""Identify faces for an operator: the top-K persons of the tenant's gallery, by similarity."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal
from uuid import UUID

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from visitlens.config import IdentitySettings
from visitlens.errors import InvalidInput
from visitlens.ports import Gallery, Hit, PersonKind
from visitlens.vision.pipeline import FacePipeline
from visitlens.vision.types import Floats, Image


class EmbeddingQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding: Annotated[list[float], Field(min_length=64, max_length=1024)]
    model_id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    top_k: int = Field(default=5, ge=1, le=50)
    kind: Literal["customer", "staff"] | None = None


class PersonMatch(BaseModel):
    person_id: UUID
    kind: PersonKind
    similarity: float
    same_person: bool = Field(description="at or above the calibrated threshold for this kind")


class FaceMatches(BaseModel):
    box: list[float] = Field(description="[x, y, width, height] in image pixels")
    detector_score: float
    quality: float
    quality_reasons: list[str]
    matches: list[PersonMatch]


class MatchResponse(BaseModel):
    model_id: str
    faces: list[FaceMatches]


@dataclass(frozen=True, slots=True)
class Matcher:
    gallery: Gallery
    settings: IdentitySettings
    pipeline: FacePipeline | None

    def _threshold(self, kind: PersonKind) -> float:
        if kind is PersonKind.STAFF:
            return self.settings.staff_match_threshold
        return self.settings.customer_link_threshold

    def _persons(self, hits: Sequence[Hit], top_k: int) -> list[PersonMatch]:
        best: dict[UUID, Hit] = {}
        for hit in hits:
            if hit.person_id not in best or hit.similarity > best[hit.person_id].similarity:
                best[hit.person_id] = hit
        ranked = sorted(best.values(), key=lambda h: h.similarity, reverse=True)[:top_k]
        return [
            PersonMatch(
                person_id=h.person_id,
                kind=h.kind,
                similarity=round(h.similarity, 4),
                same_person=h.similarity >= self._threshold(h.kind),
            )
            for h in ranked
        ]

    async def by_embedding(self, tenant_id: UUID, query: EmbeddingQuery) -> MatchResponse:
        if query.model_id != self.gallery.model_id:
            raise InvalidInput(
                f"this gallery holds {self.gallery.model_id} embeddings", field="body.model_id"
            )
        vector = np.asarray([query.embedding], np.float32)
        if vector.shape[1] != self.gallery.dim:
            raise InvalidInput(f"expected {self.gallery.dim} values", field="body.embedding")
        norm = float(np.linalg.norm(vector))
        if abs(norm - 1) > 0.01:
            raise InvalidInput("the embedding must be L2-normalised", field="body.embedding")
        kind = PersonKind(query.kind) if query.kind else None
        hits = await self.gallery.search(tenant_id, vector, query.top_k * 3, kind)
        face = FaceMatches(box=[], detector_score=1.0, quality=1.0, quality_reasons=[],
                           matches=self._persons(hits[0], query.top_k))  # fmt: skip
        return MatchResponse(model_id=self.gallery.model_id, faces=[face])

    async def by_image(self, tenant_id: UUID, image: Image, top_k: int) -> MatchResponse:
        assert self.pipeline is not None
        faces = await asyncio.to_thread(self.pipeline.analyze, image, embed_unusable=True)
        if not faces:
            raise InvalidInput("no face found in the image", field="image")
        vectors: Floats = np.stack([f.embedding for f in faces if f.embedding is not None])
        hits = await self.gallery.search(tenant_id, vectors, top_k * 3)
        return MatchResponse(
            model_id=self.gallery.model_id,
            faces=[
                FaceMatches(
                    box=[round(v, 1) for v in face.detection.box],
                    detector_score=round(face.detection.score, 4),
                    quality=face.quality.score,
                    quality_reasons=[r.value for r in face.quality.reasons],
                    matches=self._persons(per_face, top_k),
                )
                for face, per_face in zip(faces, hits, strict=True)
            ],
        )
