"""Enrol staff photos: exactly one usable face per photo, stored image + landmarks + embedding.

PostgreSQL is the system of record (image row, embedding bytes); Milvus holds the searchable copy.
A photo arrives either as an HTTP upload (kept under ``staff-images/``) or as an object dropped
under ``staff-faces/{tenant}/{staff_id}/`` (kept where it landed). Every change bumps the tenant's
staff-gallery version (a database trigger), which is how edge workers learn to refresh.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np
from minio import Minio
from minio.error import S3Error

from visitlens.adapters.gallery import Gallery, GalleryRow
from visitlens.adapters.postgres import Connection, Database, Record
from visitlens.api import audit
from visitlens.auth.principal import Principal
from visitlens.config import IdentitySettings, S3Settings
from visitlens.errors import InvalidInput, NotFound, PayloadTooLarge, TransientError
from visitlens.identity.decisions import PersonKind
from visitlens.tenancy.scope import DbScope
from visitlens.vision.decode import decode_image
from visitlens.vision.pipeline import Face, FacePipeline
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


def one_face(pipeline: FacePipeline, image: Image) -> Face:
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


class StaffEnrollment:
    def __init__(
        self,
        db: Database,
        gallery: Gallery,
        pipeline: FacePipeline,
        s3: Minio,
        s3_settings: S3Settings,
        identity: IdentitySettings,
        max_upload_bytes: int,
    ) -> None:
        self._db = db
        self.gallery = gallery
        self._pipeline = pipeline
        self._s3 = s3
        self._bucket = s3_settings.derived_bucket
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
    ) -> Record:
        """Enrol one photo; with ``object_key`` the photo already lives in the bucket there."""
        tenant_id = scope.tenant_id
        assert tenant_id is not None
        async with self._db.transaction(scope) as conn:
            await _staff(conn, staff_id)
            if object_key is not None:
                existing = await conn.fetchrow(
                    "SELECT * FROM staff_face_images WHERE object_key = $1", object_key
                )
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
            async with self._db.transaction(scope) as conn:
                await _staff(conn, staff_id, lock=True)
                await conn.execute(
                    "INSERT INTO person_embeddings (id, tenant_id, person_kind, staff_id, model_id,"
                    " dim, quality, source, snapshot_key, embedding) "
                    "VALUES ($1, $2, 'staff', $3, $4, $5, $6, 'enrollment', $7, $8)",
                    view_id, tenant_id, staff_id, self.gallery.model_id, self.gallery.dim,
                    face.quality.score, key, _vector_bytes(face.embedding),
                )  # fmt: skip
                has_primary = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM staff_face_images "
                    "WHERE staff_id = $1 AND is_primary)",
                    staff_id,
                )
                make_primary = primary or not has_primary
                if make_primary and has_primary:
                    await conn.execute(
                        "UPDATE staff_face_images SET is_primary = false "
                        "WHERE staff_id = $1 AND is_primary",
                        staff_id,
                    )
                landmarks = [[round(float(v), 2) for v in p] for p in face.detection.landmarks]
                row = await conn.fetchrow(
                    "INSERT INTO staff_face_images (id, tenant_id, staff_id, object_key, is_primary,"
                    " quality, landmarks, embedding_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                    "RETURNING *",
                    image_id, tenant_id, staff_id, key, make_primary, face.quality.score,
                    landmarks, view_id,
                )  # fmt: skip
                await self.gallery.insert(
                    [GalleryRow(view_id, tenant_id, staff_id, PersonKind.STAFF, face.embedding)]
                )
                inserted = True
                await audit.record(
                    conn,
                    actor,
                    "staff.image.enroll",
                    "staff",
                    image_id,
                    scope.tenant_id,
                    {"staff_id": str(staff_id)},
                )
        except BaseException:
            if inserted:
                await self._forget_views(tenant_id, [view_id])
            if stored_here:
                await self._remove(key)
            raise
        assert row is not None
        logger.info("staff %s: image %s enrolled (tenant %s)", staff_id, image_id, tenant_id)
        return row

    async def enroll_dropped(self, drop: DropKey, size: int | None) -> Record:
        """Enrol a photo that landed in the bucket (MinIO notification); the actor is the system."""
        if size is not None and size > self._max_upload:
            raise PayloadTooLarge(
                f"object of {size} bytes exceeds the {self._max_upload}-byte limit"
            )
        data = await self._get(drop.key)
        return await self.enroll(DbScope(drop.tenant_id), drop.staff_id, data, object_key=drop.key)

    async def forget_dropped(self, drop: DropKey) -> bool:
        """The object was deleted from the bucket: remove its image row and vector."""
        async with self._db.transaction(DbScope(drop.tenant_id)) as conn:
            image_id = await conn.fetchval(
                "SELECT id FROM staff_face_images WHERE object_key = $1", drop.key
            )
        if image_id is None:
            return False
        await self.delete_image(DbScope(drop.tenant_id), drop.staff_id, image_id, keep_object=True)
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
        async with self._db.transaction(scope) as conn:
            await _staff(conn, staff_id, lock=True)
            row = await conn.fetchrow(
                "DELETE FROM staff_face_images WHERE id = $1 AND staff_id = $2 RETURNING *",
                image_id,
                staff_id,
            )
            if row is None:
                raise NotFound(f"staff image {image_id} not found")
            if row["embedding_id"] is not None:
                await conn.execute(
                    "DELETE FROM person_embeddings WHERE id = $1", row["embedding_id"]
                )
            if row["is_primary"]:
                await conn.execute(
                    "UPDATE staff_face_images SET is_primary = true WHERE id = ("
                    "SELECT id FROM staff_face_images WHERE staff_id = $1 "
                    "ORDER BY quality DESC NULLS LAST, created_at LIMIT 1)",
                    staff_id,
                )
            await audit.record(
                conn,
                actor,
                "staff.image.delete",
                "staff",
                image_id,
                scope.tenant_id,
                {"staff_id": str(staff_id)},
            )
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
        async with self._db.transaction(scope) as conn:
            await _staff(conn, staff_id, lock=True)
            keys = await conn.fetch(
                "SELECT object_key FROM staff_face_images WHERE staff_id = $1", staff_id
            )
            await conn.execute("DELETE FROM staff WHERE id = $1", staff_id)
            await audit.record(
                conn,
                actor,
                "staff.delete",
                "staff",
                staff_id,
                scope.tenant_id,
                {"images": len(keys)},
            )
        await self.gallery.delete_person(tenant_id, staff_id)
        for record in keys:
            await self._remove(record["object_key"])

    async def set_primary(
        self, scope: DbScope, staff_id: UUID, image_id: UUID, actor: Principal | None = None
    ) -> Record:
        async with self._db.transaction(scope) as conn:
            await _staff(conn, staff_id, lock=True)
            await conn.execute(
                "UPDATE staff_face_images SET is_primary = false WHERE staff_id = $1 AND is_primary",
                staff_id,
            )
            row = await conn.fetchrow(
                "UPDATE staff_face_images SET is_primary = true WHERE id = $1 AND staff_id = $2 "
                "RETURNING *",
                image_id,
                staff_id,
            )
            if row is None:
                raise NotFound(f"staff image {image_id} not found")
            await audit.record(
                conn,
                actor,
                "staff.image.primary",
                "staff",
                image_id,
                scope.tenant_id,
                {"staff_id": str(staff_id)},
            )
        return row

    # --- recognition ----------------------------------------------------------------------

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
        async with self._db.transaction(scope) as conn:
            names = {
                r["id"]: r["display_name"]
                for r in await conn.fetch(
                    "SELECT id, display_name FROM staff WHERE id = ANY($1::uuid[]) AND active",
                    list(scores),
                )
            }
        threshold = self._identity.staff_match_threshold
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
        async with self._db.transaction(scope) as conn:
            rows = await conn.fetch(
                "SELECT i.id, i.staff_id, i.object_key, e.model_id, e.dim, e.id AS view_id "
                "FROM staff_face_images i LEFT JOIN person_embeddings e ON e.id = i.embedding_id "
                "ORDER BY i.created_at"
            )
        embedded = rejected = 0
        for row in rows:
            if row["model_id"] == self.gallery.model_id:
                continue
            try:
                face = await asyncio.to_thread(
                    one_face, self._pipeline, decode_image(await self._get(row["object_key"]))
                )
            except InvalidInput:
                face = None
            new_view = uuid.uuid4()
            async with self._db.transaction(scope) as conn:
                if row["view_id"] is not None:
                    await conn.execute(
                        "DELETE FROM person_embeddings WHERE id = $1", row["view_id"]
                    )
                if face is None or face.embedding is None:
                    rejected += 1
                    continue
                await conn.execute(
                    "INSERT INTO person_embeddings (id, tenant_id, person_kind, staff_id, model_id,"
                    " dim, quality, source, snapshot_key, embedding) "
                    "VALUES ($1, $2, 'staff', $3, $4, $5, $6, 'enrollment', $7, $8)",
                    new_view, tenant_id, row["staff_id"], self.gallery.model_id, self.gallery.dim,
                    face.quality.score, row["object_key"], _vector_bytes(face.embedding),
                )  # fmt: skip
                await conn.execute(
                    "UPDATE staff_face_images SET embedding_id = $2, quality = $3 WHERE id = $1",
                    row["id"],
                    new_view,
                    face.quality.score,
                )
                await self.gallery.insert(
                    [
                        GalleryRow(
                            new_view, tenant_id, row["staff_id"], PersonKind.STAFF, face.embedding
                        )
                    ]
                )
            embedded += 1
        async with self._db.transaction(scope) as conn:
            await audit.record(
                conn,
                actor,
                "staff.reembed",
                "staff",
                None,
                scope.tenant_id,
                {"model_id": self.gallery.model_id, "embedded": embedded, "rejected": rejected},
            )
        return {
            "model_id": self.gallery.model_id,
            "images": len(rows),
            "embedded": embedded,
            "rejected": rejected,
        }

    # --- storage --------------------------------------------------------------------------

    async def _put(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(
                self._s3.put_object,
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type="image/jpeg",
            )
        except S3Error as exc:
            raise TransientError(f"storing the photo failed: {exc.code}") from exc

    async def _get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._s3.get_object(self._bucket, key)
            try:
                return bytes(response.read(self._max_upload + 1))
            finally:
                response.close()
                response.release_conn()

        try:
            data = await asyncio.to_thread(read)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchBucket"}:
                raise NotFound(f"object {key} not found") from exc
            raise TransientError(f"reading the photo failed: {exc.code}") from exc
        if len(data) > self._max_upload:
            raise PayloadTooLarge(f"object exceeds the {self._max_upload}-byte limit")
        return data

    async def ping_store(self) -> None:
        """The photo bucket is reachable (a readiness check)."""
        if not await asyncio.to_thread(self._s3.bucket_exists, self._bucket):
            raise TransientError(f"bucket {self._bucket} is missing")

    async def photo(self, key: str) -> bytes:
        """A stored staff photo (the console's gallery); 404 if it is gone."""
        return await self._get(key)

    async def _remove(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._s3.remove_object, self._bucket, key)
        except S3Error as exc:  # logged with the key only; the purge pass finds leftovers
            logger.warning("could not remove %s: %s", key, exc.code)

    async def _forget_views(self, tenant_id: UUID, view_ids: list[UUID]) -> None:
        try:
            await self.gallery.delete_views(tenant_id, view_ids)
        except TransientError:
            logger.warning(
                "%d staff vectors left in Milvus for tenant %s", len(view_ids), tenant_id
            )


async def _staff(conn: Connection, staff_id: UUID, *, lock: bool = False) -> Record:
    if lock:
        row = await conn.fetchrow("SELECT * FROM staff WHERE id = $1 FOR UPDATE", staff_id)
    else:
        row = await conn.fetchrow("SELECT * FROM staff WHERE id = $1", staff_id)
    if row is None:
        raise NotFound(f"staff {staff_id} not found")
    return row
