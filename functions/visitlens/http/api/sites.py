"""Sites (stores) of a tenant, each with its time zone; site managers see only their own."""

from __future__ import annotations

from uuid import UUID

from visitlens.http.api.scope import site_filters, tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.api.store import Filter, Table
from visitlens.http.router import Ctx
from visitlens.pagination import Page, PageQuery
from visitlens.schemas import SiteCreate, SiteOut, SiteUpdate
from visitlens.tenancy import audit

SITES = Table("sites", "site")


async def list_sites(ctx: Ctx[ApiServices]) -> Page[SiteOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(PageQuery)
    filters = [Filter("tenant_id", tenant_id), *site_filters(ctx.principal, "id")]
    async with tenant_tx(ctx, tenant_id) as conn:
        rows, cursor = await SITES.page(conn, query, filters)
    return Page[SiteOut](items=[SiteOut.model_validate(dict(r)) for r in rows], next_cursor=cursor)


async def create_site(ctx: Ctx[ApiServices]) -> SiteOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    body = await ctx.body(SiteCreate)
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await SITES.insert(conn, {"tenant_id": tenant_id, **body.model_dump()})
        await audit.record(conn, ctx.principal, "site.create", "site", row["id"], tenant_id)
    return SiteOut.model_validate(dict(row))


async def get_site(ctx: Ctx[ApiServices]) -> SiteOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    ctx.principal.require_site(site_id)
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await SITES.get(conn, site_id)
    return SiteOut.model_validate(dict(row))


async def update_site(ctx: Ctx[ApiServices]) -> SiteOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    ctx.principal.require_site(site_id)
    changes = (await ctx.body(SiteUpdate)).model_dump(exclude_unset=True)
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await SITES.update(conn, site_id, changes)
        await audit.record(
            conn,
            ctx.principal,
            "site.update",
            "site",
            site_id,
            tenant_id,
            {"fields": sorted(changes)},
        )
    return SiteOut.model_validate(dict(row))


async def delete_site(ctx: Ctx[ApiServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    site_id: UUID = ctx.params["site_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        await SITES.delete(conn, site_id)
        await audit.record(conn, ctx.principal, "site.delete", "site", site_id, tenant_id)
