"""The route of the `match` function and the clients of one warm instance."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

from starlette.datastructures import UploadFile

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.jwt_keys import KeyRing
from visitlens.adapters.onnx_models import embedding_space, load_models
from visitlens.adapters.postgres import Database
from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from visitlens.http.router import Ctx, Route
from visitlens.identity.matching import EmbeddingQuery, Matcher, MatchResponse
from visitlens.stack.endpoints import database_dsns, milvus_uri
from visitlens.vision.decode import decode_image
from visitlens.vision.pipeline import FacePipeline


@dataclass(slots=True)
class MatchServices:
    settings: Settings
    db: Database
    auth: AuthService
    matcher: Matcher


class LazyMatchServices:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._services: MatchServices | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> MatchServices:
        if self._services is None:
            async with self._lock:
                if self._services is None:
                    self._services = await asyncio.to_thread(self._build)
        return self._services

    def _build(self) -> MatchServices:
        s = self._settings
        _, app_dsn = database_dsns(s)
        db = Database(app_dsn, s.database)
        keys = KeyRing.load(s.keys_dir, s.auth, s.env)
        model_id, dim = embedding_space(s)
        gallery = Gallery(milvus_uri(s), s.milvus, model_id, dim)
        pipeline = FacePipeline(*load_models(s))
        return MatchServices(s, db, AuthService(db, keys, s.auth),
                             Matcher(gallery, s.identity, pipeline))  # fmt: skip


async def match(ctx: Ctx[MatchServices]) -> MatchResponse:
    """An image (multipart field ``image``, optional ``top_k``) or a JSON embedding query."""
    tenant_id: UUID = ctx.params["tenant_id"]
    ctx.principal.require_tenant(tenant_id)
    matcher = ctx.services.matcher
    media_type = ctx.request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        return await matcher.by_embedding(tenant_id, await ctx.body(EmbeddingQuery))
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType("send multipart/form-data with an image, or a JSON embedding")
    limit = ctx.services.settings.http.max_upload_bytes
    declared = int(ctx.request.headers.get("content-length") or 0)
    if declared > limit:
        raise PayloadTooLarge(f"upload of {declared} bytes exceeds the {limit}-byte limit")
    async with ctx.request.form(max_files=1, max_fields=4, max_part_size=limit) as form:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("a file field named 'image' is required", field="image")
        data = await upload.read(limit + 1)
        top_k_raw = form.get("top_k", "5")
    if len(data) > limit:
        raise PayloadTooLarge(f"image exceeds the {limit}-byte limit")
    try:
        top_k = int(str(top_k_raw))
    except ValueError as exc:
        raise InvalidInput("top_k must be an integer", field="top_k") from exc
    if not 1 <= top_k <= 50:
        raise InvalidInput("top_k must be between 1 and 50", field="top_k")
    image = decode_image(data)
    return await matcher.by_image(tenant_id, image, top_k)


ROUTES = [
    Route.build(
        "POST", "/v1/match/{tenant_id:uuid}", match, tag="match",
        roles=(Role.TENANT_ADMIN, Role.SITE_MANAGER),
        summary="Identify the faces of an image, or an embedding: top-K persons of the tenant",
        body=EmbeddingQuery, response=MatchResponse,
    ),
]  # fmt: skip
