"""Tenants: system admins create, list and delete them; a tenant admin reads and edits its own."""

from __future__ import annotations

from uuid import UUID

from visitlens.errors import Forbidden
from visitlens.http.api.services import ApiServices
from visitlens.http.api.store import Table
from visitlens.http.router import Ctx
from visitlens.pagination import Page, PageQuery
from visitlens.ports import DbScope
from visitlens.schemas import TenantCreate, TenantOut, TenantUpdate
from visitlens.tenancy import audit

TENANTS = Table("tenants", "tenant")


def _platform_scope(ctx: Ctx[ApiServices]) -> DbScope:
    return ctx.principal.db_scope(None)


async def list_tenants(ctx: Ctx[ApiServices]) -> Page[TenantOut]:
    query = ctx.query(PageQuery)
    async with ctx.services.db.transaction(_platform_scope(ctx)) as conn:
        rows, cursor = await TENANTS.page(conn, query)
    return Page[TenantOut](
        items=[TenantOut.model_validate(dict(r)) for r in rows], next_cursor=cursor
    )


async def create_tenant(ctx: Ctx[ApiServices]) -> TenantOut:
    body = await ctx.body(TenantCreate)
    async with ctx.services.db.transaction(_platform_scope(ctx)) as conn:
        row = await TENANTS.insert(conn, body.model_dump())
        await audit.record(conn, ctx.principal, "tenant.create", "tenant", row["id"], None)
    return TenantOut.model_validate(dict(row))


async def get_tenant(ctx: Ctx[ApiServices]) -> TenantOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        row = await TENANTS.get(conn, tenant_id)
    return TenantOut.model_validate(dict(row))


async def update_tenant(ctx: Ctx[ApiServices]) -> TenantOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    body = await ctx.body(TenantUpdate)
    changes = body.model_dump(exclude_unset=True)
    if "active" in changes and not ctx.principal.is_system_admin:
        raise Forbidden("only a system admin can activate or deactivate a tenant")
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        row = await TENANTS.update(conn, tenant_id, changes)
        if changes.get("active") is False:
            # Every session of the tenant ends now; access tokens fail their live check.
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() "
                "WHERE tenant_id = $1 AND revoked_at IS NULL",
                tenant_id,
            )
        await audit.record(
            conn,
            ctx.principal,
            "tenant.update",
            "tenant",
            tenant_id,
            tenant_id,
            {"fields": sorted(changes)},
        )
    return TenantOut.model_validate(dict(row))


async def delete_tenant(ctx: Ctx[ApiServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with ctx.services.db.transaction(_platform_scope(ctx)) as conn:
        await TENANTS.delete(conn, tenant_id)
        await audit.record(conn, ctx.principal, "tenant.delete", "tenant", tenant_id, None)
