"""The HTTP routes of the `enroll-staff` function and the clients of one warm instance.

Staff members, their photos (multipart upload, one usable face each), a recognition test, the
re-embedding after a model change, and the per-site gallery that edge workers download.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.auth.principal import Principal, Role
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.contracts import MINIO_TYPE_PREFIX
from visitlens.errors import Forbidden, InvalidInput, NotFound, VisitlensError
from visitlens.http import health
from visitlens.http.api.snapshots import snapshot_response
from visitlens.http.api.store import Filter, Table
from visitlens.http.body import read_upload
from visitlens.http.cloudevents import read_event, rejection
from visitlens.http.function import EventEndpoint
from visitlens.http.router import Ctx, Route
from visitlens.pagination import Page, PageQuery
from visitlens.ports import Connection, Row, Transactions
from visitlens.schemas import Input
from visitlens.staff.enrollment import StaffEnrollment, parse_drop_key
from visitlens.staff.schemas import (
    RecognitionTest,
    Reembedded,
    StaffCreate,
    StaffGallery,
    StaffImageOut,
    StaffOut,
    StaffUpdate,
)
from visitlens.tenancy import audit

STAFF = Table("staff", "staff member")
ADMIN, MANAGER, WORKER = Role.TENANT_ADMIN, Role.SITE_MANAGER, Role.WORKER
P = "/v1/staff/{tenant_id:uuid}"
logger = logging.getLogger("visitlens.enroll_staff")


@dataclass(slots=True)
class StaffServices:
    settings: Settings
    db: Transactions
    checks: Mapping[str, health.Check]
    auth: AuthService
    enrollment: StaffEnrollment


class GalleryQuery(Input):
    site_id: UUID
    model_id: str | None = Field(default=None, description="default: the server's model")


# --- helpers --------------------------------------------------------------------------------


def _check_staff_scope(principal: Principal, site_id: UUID | None) -> None:
    """Managers act on staff of their own sites; tenant-wide staff (no site) are admin-only."""
    if principal.sees_all_sites():
        return
    if site_id is None:
        raise Forbidden("staff working at every site are managed by a tenant admin")
    principal.require_site(site_id)


async def _scoped_staff(conn: Connection, principal: Principal, staff_id: UUID) -> Row:
    row = await STAFF.get(conn, staff_id)
    _check_staff_scope(principal, row["site_id"])
    return row


async def _photo(ctx: Ctx[StaffServices], *extra: str) -> tuple[bytes, dict[str, str]]:
    return await read_upload(ctx.request, ctx.services.settings.http.max_upload_bytes, extra)


def _flag(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"", "false", "0", "no"}:
        return False
    if lowered in {"true", "1", "yes"}:
        return True
    raise InvalidInput("must be true or false", field=field)


def _image_out(row: Row) -> StaffImageOut:
    return StaffImageOut.model_validate(dict(row))


# --- staff members --------------------------------------------------------------------------


async def list_staff(ctx: Ctx[StaffServices]) -> Page[StaffOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    filters: list[Filter] = []
    if not ctx.principal.sees_all_sites():
        filters.append(Filter("site_id", sorted(ctx.principal.site_ids), op="any"))
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        rows, cursor = await STAFF.page(conn, ctx.query(PageQuery), filters)
    return Page[StaffOut](
        items=[StaffOut.model_validate(dict(r)) for r in rows], next_cursor=cursor
    )


async def create_staff(ctx: Ctx[StaffServices]) -> StaffOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    body = await ctx.body(StaffCreate)
    _check_staff_scope(ctx.principal, body.site_id)
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        if body.site_id is not None and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sites WHERE id = $1)", body.site_id
        ):
            raise InvalidInput("unknown site in this tenant", field="body.site_id")
        row = await STAFF.insert(conn, {"tenant_id": tenant_id, **body.model_dump()})
        await audit.record(conn, ctx.principal, "staff.create", "staff", row["id"], tenant_id)
    return StaffOut.model_validate(dict(row))


async def get_staff(ctx: Ctx[StaffServices]) -> StaffOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        row = await _scoped_staff(conn, ctx.principal, ctx.params["staff_id"])
    return StaffOut.model_validate(dict(row))


async def update_staff(ctx: Ctx[StaffServices]) -> StaffOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    changes = (await ctx.body(StaffUpdate)).model_dump(exclude_unset=True)
    if "site_id" in changes:
        _check_staff_scope(ctx.principal, changes["site_id"])
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
        row = await STAFF.update(conn, staff_id, changes)
        await audit.record(
            conn, ctx.principal, "staff.update", "staff", staff_id, tenant_id,
            {"fields": sorted(changes)},
        )  # fmt: skip
    return StaffOut.model_validate(dict(row))


async def delete_staff(ctx: Ctx[StaffServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    scope = ctx.principal.db_scope(tenant_id)
    async with ctx.services.db.transaction(scope) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
    await ctx.services.enrollment.delete_staff(scope, staff_id, ctx.principal)


# --- photos ---------------------------------------------------------------------------------


async def list_images(ctx: Ctx[StaffServices]) -> Page[StaffImageOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
        rows = await conn.fetch(
            "SELECT * FROM staff_face_images WHERE staff_id = $1 ORDER BY created_at, id", staff_id
        )
    return Page[StaffImageOut](items=[_image_out(r) for r in rows], next_cursor=None)


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


async def image_content(ctx: Ctx[StaffServices]) -> Response:
    """The photo itself, for the console's gallery (private cache, never sniffed as a document)."""
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
        key = await conn.fetchval(
            "SELECT object_key FROM staff_face_images WHERE id = $1 AND staff_id = $2",
            ctx.params["image_id"], staff_id,
        )  # fmt: skip
    if key is None:
        raise NotFound("no such photo of this staff member")
    data = await ctx.services.enrollment.photo(key)
    return snapshot_response(data, _image_type(data))


async def upload_image(ctx: Ctx[StaffServices]) -> StaffImageOut:
    """Multipart: ``image`` (JPEG/PNG/WebP), optional ``primary`` = true."""
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    scope = ctx.principal.db_scope(tenant_id)
    async with ctx.services.db.transaction(scope) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
    data, fields = await _photo(ctx, "primary")
    row = await ctx.services.enrollment.enroll(
        scope, staff_id, data, primary=_flag(fields["primary"], "primary"), actor=ctx.principal
    )
    return _image_out(row)


async def delete_image(ctx: Ctx[StaffServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    scope = ctx.principal.db_scope(tenant_id)
    async with ctx.services.db.transaction(scope) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
    await ctx.services.enrollment.delete_image(
        scope, staff_id, ctx.params["image_id"], actor=ctx.principal
    )


async def make_primary(ctx: Ctx[StaffServices]) -> StaffImageOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    staff_id: UUID = ctx.params["staff_id"]
    scope = ctx.principal.db_scope(tenant_id)
    async with ctx.services.db.transaction(scope) as conn:
        await _scoped_staff(conn, ctx.principal, staff_id)
    row = await ctx.services.enrollment.set_primary(
        scope, staff_id, ctx.params["image_id"], ctx.principal
    )
    return _image_out(row)


async def test_recognition(ctx: Ctx[StaffServices]) -> RecognitionTest:
    tenant_id: UUID = ctx.params["tenant_id"]
    scope = ctx.principal.db_scope(tenant_id)
    data, _ = await _photo(ctx)
    result = await ctx.services.enrollment.test_recognition(scope, data)
    return RecognitionTest.model_validate(result)


async def reembed(ctx: Ctx[StaffServices]) -> Reembedded:
    tenant_id: UUID = ctx.params["tenant_id"]
    result = await ctx.services.enrollment.reembed(ctx.principal.db_scope(tenant_id), ctx.principal)
    return Reembedded.model_validate(result)


# --- the edge's gallery ---------------------------------------------------------------------


def _etag(version: int, model_id: str, site_id: UUID, threshold: float) -> str:
    return f'"{site_id}:{model_id}:{version}:{threshold:.4f}"'


async def staff_gallery(ctx: Ctx[StaffServices]) -> Response:
    """The site's staff views (ETag = version; If-None-Match answers 304 when nothing changed)."""
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(GalleryQuery)
    ctx.principal.require_site(query.site_id)
    gallery = ctx.services.enrollment.gallery
    model_id = query.model_id or gallery.model_id
    # the one staff threshold (ingest's): the edge decides with the server's number
    threshold = await ctx.services.enrollment.threshold(ctx.principal.db_scope(tenant_id))
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM sites WHERE id = $1)", query.site_id
        ):
            raise InvalidInput("unknown site in this tenant", field="site_id")
        version = await conn.fetchval(
            "SELECT coalesce((SELECT version FROM staff_gallery_versions), 0)"
        )
        etag = _etag(version, model_id, query.site_id, threshold)
        if ctx.request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        rows = await conn.fetch(
            "SELECT e.id, e.staff_id, e.dim, e.embedding FROM person_embeddings e "
            "JOIN staff s ON s.id = e.staff_id "
            "WHERE s.active AND (s.site_id IS NULL OR s.site_id = $1) AND e.model_id = $2 "
            "AND e.embedding IS NOT NULL ORDER BY e.staff_id, e.id",
            query.site_id,
            model_id,
        )
    dim = rows[0]["dim"] if rows else (gallery.dim if model_id == gallery.model_id else 0)
    body: dict[str, Any] = StaffGallery(
        version=version,
        site_id=query.site_id,
        model_id=model_id,
        dim=dim,
        staff_match_threshold=threshold,
        entries=[],
    ).model_dump(mode="json")
    body["entries"] = [
        {
            "staff_id": str(r["staff_id"]),
            "view_id": str(r["id"]),
            "embedding": np.frombuffer(r["embedding"], "<f4").round(7).tolist(),
        }
        for r in rows
    ]
    return JSONResponse(body, headers={"ETag": etag, "Cache-Control": "no-cache"})


S = f"{P}/{{staff_id:uuid}}"
ROUTES = [
    Route.build("GET", P, list_staff, tag="staff", roles=(ADMIN, MANAGER),
                summary="List staff members", query=PageQuery, response=Page[StaffOut]),
    Route.build("POST", P, create_staff, tag="staff", roles=(ADMIN, MANAGER),
                summary="Create a staff member", body=StaffCreate, response=StaffOut, status=201),
    Route.build("GET", f"{P}/gallery", staff_gallery, tag="staff", roles=(ADMIN, MANAGER, WORKER),
                summary="A site's staff embeddings for edge workers (ETag = version)",
                query=GalleryQuery, response=StaffGallery),
    Route.build("POST", f"{P}/test-recognition", test_recognition, tag="staff",
                roles=(ADMIN, MANAGER), summary="Score a probe photo against the staff gallery",
                response=RecognitionTest),
    Route.build("POST", f"{P}/reembed", reembed, tag="staff", roles=(ADMIN,),
                summary="Re-compute staff embeddings with the configured model",
                response=Reembedded),
    Route.build("GET", S, get_staff, tag="staff", roles=(ADMIN, MANAGER),
                summary="Get a staff member", response=StaffOut),
    Route.build("PATCH", S, update_staff, tag="staff", roles=(ADMIN, MANAGER),
                summary="Update a staff member", body=StaffUpdate, response=StaffOut),
    Route.build("DELETE", S, delete_staff, tag="staff", roles=(ADMIN, MANAGER),
                summary="Delete a staff member with photos, embeddings and vectors", status=204),
    Route.build("GET", f"{S}/images", list_images, tag="staff", roles=(ADMIN, MANAGER),
                summary="A staff member's photos", response=Page[StaffImageOut]),
    Route.build("POST", f"{S}/images", upload_image, tag="staff", roles=(ADMIN, MANAGER),
                summary="Enrol a photo (multipart 'image'; exactly one usable face)",
                response=StaffImageOut, status=201),
    Route.build("GET", f"{S}/images/{{image_id:uuid}}/content", image_content, tag="staff",
                roles=(ADMIN, MANAGER), summary="The photo itself (image/jpeg, png or webp)"),
    Route.build("DELETE", f"{S}/images/{{image_id:uuid}}", delete_image, tag="staff",
                roles=(ADMIN, MANAGER), summary="Delete a photo and its vector", status=204),
    Route.build("POST", f"{S}/images/{{image_id:uuid}}/primary", make_primary, tag="staff",
                roles=(ADMIN, MANAGER), summary="Make a photo the primary one",
                response=StaffImageOut),
]  # fmt: skip


# --- photos dropped into the bucket (MinIO notifications) ---------------------------------------

NOTIFICATION_LIMIT = 64 * 1024


class BucketEvents(EventEndpoint[StaffServices]):
    """A MinIO record (as the bridge, the gateway or a Knative source delivers it) for
    ``staff-faces/``: a photo dropped there is enrolled, a photo removed is forgotten."""

    async def __call__(self, request: Request) -> Response:
        """A MinIO record (as the gateway or a Knative source delivers it) for ``staff-faces/``."""
        event = None
        try:
            self._deliveries.verify(request.headers.get("authorization"))
            event = await read_event(request, NOTIFICATION_LIMIT)
            kind = str(event["type"])
            if not kind.startswith(MINIO_TYPE_PREFIX):
                raise InvalidInput(
                    f"enroll-staff takes MinIO notifications, not {kind}", field="type"
                )
            record = event.data if isinstance(event.data, dict) else {}
            key = str(event.get("subject") or "")
            drop = parse_drop_key(key)
            s = await self._services()
            if ":ObjectRemoved:" in kind:
                removed = await s.enrollment.forget_dropped(drop)
                logger.info("staff photo %s removed from the bucket (known: %s)", drop.key, removed)
                return Response(status_code=204)
            size = record.get("s3", {}).get("object", {}).get("size")
            row = await s.enrollment.enroll_dropped(drop, size if isinstance(size, int) else None)
        except VisitlensError as error:
            return rejection(error, event)
        return JSONResponse({"image_id": str(row["id"]), "staff_id": str(row["staff_id"])}, 201)
