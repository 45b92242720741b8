"""Cameras of a site. Workers see only the cameras their key names; managers only their sites'."""

from __future__ import annotations

from uuid import UUID

from visitlens.auth.principal import Principal, Role
from visitlens.http.api.scope import tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.api.sites import SITES
from visitlens.http.api.store import Filter, Table
from visitlens.http.router import Ctx
from visitlens.pagination import Page, PageQuery
from visitlens.ports import Connection, Row
from visitlens.schemas import CameraCreate, CameraOut, CameraUpdate
from visitlens.tenancy import audit

# the newest sighting is the edge's health as the platform sees it (index-only, newest first)
CAMERAS = Table(
    "cameras",
    "camera",
    returning="*, (SELECT max(s.captured_at) FROM sightings s WHERE s.tenant_id = cameras.tenant_id"
    " AND s.camera_id = cameras.id) AS last_sighting_at",
)


def _camera_filters(principal: Principal) -> list[Filter]:
    if principal.role is Role.WORKER:
        return [Filter("id", sorted(principal.camera_ids), op="any")]
    return []


async def _scoped_camera(conn: Connection, principal: Principal, camera_id: UUID) -> Row:
    row = await CAMERAS.get(conn, camera_id)
    principal.require_camera(row["site_id"], camera_id)
    return row


async def list_cameras(ctx: Ctx[ApiServices]) -> Page[CameraOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    ctx.principal.require_site(site_id)
    query = ctx.query(PageQuery)
    filters = [Filter("site_id", site_id), *_camera_filters(ctx.principal)]
    async with tenant_tx(ctx, tenant_id) as conn:
        await SITES.get(conn, site_id)
        rows, cursor = await CAMERAS.page(conn, query, filters)
    items = [CameraOut.model_validate(dict(r)) for r in rows]
    return Page[CameraOut](items=items, next_cursor=cursor)


async def create_camera(ctx: Ctx[ApiServices]) -> CameraOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    ctx.principal.require_site(site_id)
    body = await ctx.body(CameraCreate)
    async with tenant_tx(ctx, tenant_id) as conn:
        await SITES.get(conn, site_id)
        values = {"tenant_id": tenant_id, "site_id": site_id, **body.model_dump()}
        row = await CAMERAS.insert(conn, values)
        await audit.record(conn, ctx.principal, "camera.create", "camera", row["id"], tenant_id)
    return CameraOut.model_validate(dict(row))


async def get_camera(ctx: Ctx[ApiServices]) -> CameraOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await _scoped_camera(conn, ctx.principal, ctx.params["camera_id"])
    return CameraOut.model_validate(dict(row))


async def update_camera(ctx: Ctx[ApiServices]) -> CameraOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    camera_id: UUID = ctx.params["camera_id"]
    changes = (await ctx.body(CameraUpdate)).model_dump(exclude_unset=True)
    async with tenant_tx(ctx, tenant_id) as conn:
        await _scoped_camera(conn, ctx.principal, camera_id)
        row = await CAMERAS.update(conn, camera_id, changes)
        await audit.record(
            conn,
            ctx.principal,
            "camera.update",
            "camera",
            camera_id,
            tenant_id,
            {"fields": sorted(changes)},
        )
    return CameraOut.model_validate(dict(row))


async def delete_camera(ctx: Ctx[ApiServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    camera_id: UUID = ctx.params["camera_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        await _scoped_camera(conn, ctx.principal, camera_id)
        await CAMERAS.delete(conn, camera_id)
        await audit.record(conn, ctx.principal, "camera.delete", "camera", camera_id, tenant_id)
