"""Enrol staff photos: exactly one usable face per photo, stored image + landmarks + embedding.

PostgreSQL is the system of record (image row, embedding bytes); Milvus holds the searchable copy.
A photo arrives either as an HTTP upload (kept under ``staff-images/``) or as an object dropped
under ``staff-faces/{tenant}/{staff_id}/`` (kept where it landed). Every change bumps the tenant's
staff-gallery version (a database trigger), which is how edge workers learn to refresh.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

import numpy as np

from visitlens.auth.principal import Principal
from visitlens.config import IdentitySettings
from visitlens.errors import InvalidInput, NotFound, PayloadTooLarge, TransientError
from visitlens.identity.decisions import staff_threshold
from visitlens.ports import DbScope, Gallery, GalleryRow, ObjectStore, PersonKind, Row
from visitlens.vision.decode import decode_image
from visitlens.vision.pipeline import Face, FaceAnalyzer
from visitlens.vision.types import Image

logger = logging.getLogger(__name__)

DROP_PREFIX = "staff-faces/"
"""Photos dropped here (MinIO/S3) are enrolled by the bucket notification."""
UPLOAD_PREFIX = "staff-images/"
"""Photos uploaded over HTTP are stored here (never under DROP_PREFIX: no second enrolment)."""
_DROP_KEY = re.compile(
    r"^staff-faces/(?P<tenant>[0-9a-f-]{36})/(?P<staff>[0-9a-f-]{36})/[^/]+\.(?:jpe?g|png|webp)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class DropKey:
    tenant_id: UUID
    staff_id: UUID
    key: str


def parse_drop_key(key: str) -> DropKey:
    """``staff-faces/{tenant}/{staff_id}/{name}.jpg`` → ids; anything else is refused."""
    match = _DROP_KEY.match(key)
    if match is None:
        raise InvalidInput(
            "object key must be staff-faces/{tenant_id}/{staff_id}/{name}.jpg|.png|.webp",
            field="subject",
        )
    try:
        return DropKey(UUID(match["tenant"]), UUID(match["staff"]), key)
    except ValueError as exc:
        raise InvalidInput("tenant or staff id in the key is not a UUID", field="subject") from exc


def one_face(pipeline: FaceAnalyzer, image: Image) -> Face:
    """The single usable face of an enrolment photo, or an error that says what is wrong.

    Faces too small, blurred or turned to be recognised (a passer-by far behind) do not count;
    two recognisable faces make the photo ambiguous.
    """
    faces = pipeline.analyze(image)
    if not faces:
        raise InvalidInput("no face found in the photo", field="image")
    usable = [f for f in faces if f.embedding is not None and f.quality.usable]
    if len(usable) > 1:
        raise InvalidInput(
            f"{len(usable)} faces found; a staff photo must show exactly one person",
            field="image",
        )
    if not usable:
        reasons = ", ".join(r.value for r in faces[0].quality.reasons)
        raise InvalidInput(f"the face is not usable for recognition: {reasons}", field="image")
    return usable[0]


def _vector_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").tobytes()


class StaffUnit(Protocol):
    """The port of one enrolment transaction (PostgreSQL in production). Image rows are
    returned as rows (the HTTP layer serialises them)."""

    async def staff_exists(self, staff_id: UUID, *, lock: bool = False) -> bool: ...
    async def image_by_key(self, object_key: str) -> Row | None: ...
    async def add_view(
        self, view_id: UUID, staff_id: UUID, model_id: str, dim: int, quality: float,
        object_key: str, embedding: bytes,
    ) -> None: ...  # fmt: skip
    async def delete_view(self, view_id: UUID) -> None: ...
    async def has_primary(self, staff_id: UUID) -> bool: ...
    async def clear_primary(self, staff_id: UUID) -> None: ...
    async def add_image(
        self, image_id: UUID, staff_id: UUID, object_key: str, primary: bool, quality: float,
        landmarks: list[list[float]], view_id: UUID,
    ) -> Row: ...  # fmt: skip
    async def delete_image(self, image_id: UUID, staff_id: UUID) -> Row | None: ...
    async def promote_best(self, staff_id: UUID) -> None:
        """The sharpest remaining image (then the oldest) becomes the primary one."""
        ...

    async def set_primary(self, image_id: UUID, staff_id: UUID) -> Row | None: ...
    async def image_keys(self, staff_id: UUID) -> list[str]: ...
    async def delete_staff(self, staff_id: UUID) -> None:
        """The member and, by cascade, their images and embedding rows."""
        ...

    async def active_names(self, staff_ids: Sequence[UUID]) -> dict[UUID, str]: ...
    async def staff_views(self) -> int:
        """The tenant's stored staff views: what the staff threshold is computed from
        (:func:`visitlens.identity.decisions.staff_threshold`), as ingest counts them."""
        ...

    async def images(self) -> list[StaffImage]:
        """Every image with the model of its embedding, oldest first."""
        ...

    async def set_image_view(self, image_id: UUID, view_id: UUID, quality: float) -> None: ...
    async def audit(
        self, actor: Principal | None, action: str, target_id: UUID | None,
        details: dict[str, Any],
    ) -> None: ...  # fmt: skip


class StaffStore(Protocol):
    def unit(self, scope: DbScope) -> AbstractAsyncContextManager[StaffUnit]: ...


@dataclass(frozen=True, slots=True)
class StaffImage:
    id: UUID
    staff_id: UUID
    object_key: str
    model_id: str | None
    view_id: UUID | None


async def _staff(unit: StaffUnit, staff_id: UUID, *, lock: bool = False) -> None:
    if not await unit.staff_exists(staff_id, lock=lock):
        raise NotFound(f"staff {staff_id} not found")


class StaffEnrollment:
    def __init__(
        self,
        store: StaffStore,
        gallery: Gallery,
        pipeline: FaceAnalyzer,
        objects: ObjectStore,
        bucket: str,
        identity: IdentitySettings,
        max_upload_bytes: int,
    ) -> None:
        self._store = store
        self.gallery = gallery
        self._pipeline = pipeline
        self._objects = objects
        self._bucket = bucket
        self._identity = identity
        self._max_upload = max_upload_bytes

    # --- enrolment ------------------------------------------------------------------------

    async def enroll(
        self,
        scope: DbScope,
        staff_id: UUID,
        data: bytes,
        *,
        object_key: str | None = None,
        primary: bool = False,
        actor: Principal | None = None,
    ) -> Row:
        """Enrol one photo; with ``object_key`` the photo already lives in the bucket there."""
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        async with self._store.unit(scope) as unit:
            await _staff(unit, staff_id)
            if object_key is not None:
                existing = await unit.image_by_key(object_key)
                if existing is not None:  # a redelivered bucket notification
                    return existing
        image = decode_image(data)
        face = await asyncio.to_thread(one_face, self._pipeline, image)
        assert face.embedding is not None
        image_id = uuid.uuid4()
        stored_here = object_key is None
        key = object_key or f"{UPLOAD_PREFIX}{tenant_id}/{staff_id}/{image_id}.jpg"
        if stored_here:
            await self._put(key, data)
        view_id = uuid.uuid4()
        inserted = False
        try:
            async with self._store.unit(scope) as unit:
                await _staff(unit, staff_id, lock=True)
                await unit.add_view(
                    view_id, staff_id, self.gallery.model_id, self.gallery.dim,
                    face.quality.score, key, _vector_bytes(face.embedding),
                )  # fmt: skip
                has_primary = await unit.has_primary(staff_id)
                make_primary = primary or not has_primary
                if make_primary and has_primary:
                    await unit.clear_primary(staff_id)
                landmarks = [[round(float(v), 2) for v in p] for p in face.detection.landmarks]
                row = await unit.add_image(
                    image_id, staff_id, key, make_primary, face.quality.score, landmarks, view_id
                )
                await self.gallery.insert(
                    [GalleryRow(view_id, tenant_id, staff_id, PersonKind.STAFF, face.embedding)]
                )
                inserted = True
                await unit.audit(actor, "staff.image.enroll", image_id, {"staff_id": str(staff_id)})
        except BaseException:
            if inserted:
                await self._forget_views(tenant_id, [view_id])
            if stored_here:
                await self._remove(key)
            raise
        logger.info("staff %s: image %s enrolled (tenant %s)", staff_id, image_id, tenant_id)
        return row

    async def enroll_dropped(self, drop: DropKey, size: int | None) -> Row:
        """Enrol a photo that landed in the bucket (MinIO notification); the actor is the system."""
        if size is not None and size > self._max_upload:
            raise PayloadTooLarge(
                f"object of {size} bytes exceeds the {self._max_upload}-byte limit"
            )
        data = await self.photo(drop.key)
        return await self.enroll(DbScope(drop.tenant_id), drop.staff_id, data, object_key=drop.key)

    async def forget_dropped(self, drop: DropKey) -> bool:
        """The object was deleted from the bucket: remove its image row and vector."""
        async with self._store.unit(DbScope(drop.tenant_id)) as unit:
            image = await unit.image_by_key(drop.key)
        if image is None:
            return False
        await self.delete_image(
            DbScope(drop.tenant_id), drop.staff_id, image["id"], keep_object=True
        )
        return True

    async def delete_image(
        self,
        scope: DbScope,
        staff_id: UUID,
        image_id: UUID,
        *,
        keep_object: bool = False,
        actor: Principal | None = None,
    ) -> None:
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        async with self._store.unit(scope) as unit:
            await _staff(unit, staff_id, lock=True)
            row = await unit.delete_image(image_id, staff_id)
            if row is None:
                raise NotFound(f"staff image {image_id} not found")
            if row["embedding_id"] is not None:
                await unit.delete_view(row["embedding_id"])
            if row["is_primary"]:
                await unit.promote_best(staff_id)
            await unit.audit(actor, "staff.image.delete", image_id, {"staff_id": str(staff_id)})
        if row["embedding_id"] is not None:
            await self._forget_views(tenant_id, [row["embedding_id"]])
        if not keep_object:
            await self._remove(row["object_key"])

    async def delete_staff(
        self, scope: DbScope, staff_id: UUID, actor: Principal | None = None
    ) -> None:
        """Remove a staff member with every image, embedding row, vector and stored photo."""
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        async with self._store.unit(scope) as unit:
            await _staff(unit, staff_id, lock=True)
            keys = await unit.image_keys(staff_id)
            await unit.delete_staff(staff_id)
            await unit.audit(actor, "staff.delete", staff_id, {"images": len(keys)})
        await self.gallery.delete_person(tenant_id, staff_id)
        for key in keys:
            await self._remove(key)

    async def set_primary(
        self, scope: DbScope, staff_id: UUID, image_id: UUID, actor: Principal | None = None
    ) -> Row:
        async with self._store.unit(scope) as unit:
            await _staff(unit, staff_id, lock=True)
            await unit.clear_primary(staff_id)
            row = await unit.set_primary(image_id, staff_id)
            if row is None:
                raise NotFound(f"staff image {image_id} not found")
            await unit.audit(actor, "staff.image.primary", image_id, {"staff_id": str(staff_id)})
        return row

    # --- recognition ----------------------------------------------------------------------

    async def threshold(self, scope: DbScope) -> float:
        """The tenant's staff threshold now: the one ingest decides with (same count, same
        rule), served to the edge with the staff gallery."""
        async with self._store.unit(scope) as unit:
            return staff_threshold(await unit.staff_views(), self._identity)

    async def test_recognition(self, scope: DbScope, data: bytes) -> dict[str, Any]:
        """Score the best face of a probe photo against the tenant's staff."""
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        image = decode_image(data)
        faces = await asyncio.to_thread(self._pipeline.analyze, image)
        usable = [f for f in faces if f.embedding is not None]
        if not usable:
            raise InvalidInput("no usable face found in the probe photo", field="image")
        best = usable[0]
        assert best.embedding is not None
        hits = await self.gallery.search(tenant_id, best.embedding[None, :], self._identity.top_k)
        scores: dict[UUID, float] = {}
        for hit in hits[0]:
            if hit.kind is PersonKind.STAFF:
                scores[hit.person_id] = max(scores.get(hit.person_id, -1.0), hit.similarity)
        async with self._store.unit(scope) as unit:
            names = await unit.active_names(list(scores))
            threshold = staff_threshold(await unit.staff_views(), self._identity)
        ranked = sorted(
            ((sid, sim) for sid, sim in scores.items() if sid in names), key=lambda p: -p[1]
        )
        return {
            "faces": len(faces),
            "quality": best.quality.score,
            "threshold": threshold,
            "scores": [
                {
                    "staff_id": sid,
                    "display_name": names[sid],
                    "similarity": round(sim, 4),
                    "match": sim >= threshold,
                }
                for sid, sim in ranked
            ],
        }

    async def reembed(self, scope: DbScope, actor: Principal | None = None) -> dict[str, Any]:
        """Re-compute every staff image's embedding in the configured model's space.

        Images already embedded by this model are left alone; an image that no longer yields
        exactly one usable face keeps its row but loses its embedding (and is counted).
        """
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        async with self._store.unit(scope) as unit:
            images = await unit.images()
        embedded = rejected = 0
        for image in images:
            if image.model_id == self.gallery.model_id:
                continue
            try:
                face = await asyncio.to_thread(
                    one_face, self._pipeline, decode_image(await self.photo(image.object_key))
                )
            except InvalidInput:
                face = None
            new_view = uuid.uuid4()
            async with self._store.unit(scope) as unit:
                if image.view_id is not None:
                    await unit.delete_view(image.view_id)
                if face is None or face.embedding is None:
                    rejected += 1
                    continue
                await unit.add_view(
                    new_view, image.staff_id, self.gallery.model_id, self.gallery.dim,
                    face.quality.score, image.object_key, _vector_bytes(face.embedding),
                )  # fmt: skip
                await unit.set_image_view(image.id, new_view, face.quality.score)
                await self.gallery.insert(
                    [GalleryRow(new_view, tenant_id, image.staff_id, PersonKind.STAFF,
                                face.embedding)]
                )  # fmt: skip
            embedded += 1
        async with self._store.unit(scope) as unit:
            await unit.audit(
                actor, "staff.reembed", None,
                {"model_id": self.gallery.model_id, "embedded": embedded, "rejected": rejected},
            )  # fmt: skip
        return {
            "model_id": self.gallery.model_id,
            "images": len(images),
            "embedded": embedded,
            "rejected": rejected,
        }

    # --- storage --------------------------------------------------------------------------

    async def _put(self, key: str, data: bytes) -> None:
        await self._objects.put(self._bucket, key, data, "image/jpeg")

    async def photo(self, key: str) -> bytes:
        """A stored staff photo (the console's gallery); 404 if it is gone."""
        return await self._objects.read(self._bucket, key, self._max_upload)

    async def _remove(self, key: str) -> None:
        try:
            await self._objects.delete(self._bucket, [key])
        except TransientError:  # logged with the key only; the purge pass finds leftovers
            logger.warning("could not remove %s", key)

    async def _forget_views(self, tenant_id: UUID, view_ids: list[UUID]) -> None:
        try:
            await self.gallery.delete_views(tenant_id, view_ids)
        except TransientError:
            logger.warning(
                "%d staff vectors left in Milvus for tenant %s", len(view_ids), tenant_id
            )
