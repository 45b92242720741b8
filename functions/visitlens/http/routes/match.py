"""The route of the `match` function and the clients of one warm instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.errors import InvalidInput, UnsupportedMediaType
from visitlens.http import health
from visitlens.http.body import read_upload
from visitlens.http.router import Ctx, Route
from visitlens.identity.matching import EmbeddingQuery, Matcher, MatchResponse
from visitlens.vision.decode import decode_image


@dataclass(slots=True)
class MatchServices:
    settings: Settings
    checks: Mapping[str, health.Check]
    auth: AuthService
    matcher: Matcher


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
    data, fields = await read_upload(ctx.request, limit, ("top_k",))
    top_k_raw = fields["top_k"] or "5"
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
