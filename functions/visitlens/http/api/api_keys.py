"""API keys (for edge workers and integrations): the secret is shown once, stored as a digest.

Tenant admins issue any tenant role; site managers issue worker keys for their own sites only.
"""

from __future__ import annotations

from uuid import UUID

from visitlens.auth import secrets as opaque
from visitlens.auth.principal import Role
from visitlens.errors import Forbidden
from visitlens.http.api.scope import (
    check_role_scope,
    require_cameras_in_sites,
    require_sites_exist,
    tenant_tx,
)
from visitlens.http.api.services import ApiServices
from visitlens.http.api.store import Filter, Table
from visitlens.http.router import Ctx
from visitlens.pagination import Page, PageQuery
from visitlens.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from visitlens.tenancy import audit

KEY_COLUMNS = (
    "id, tenant_id, name, prefix, role, site_ids, camera_ids, created_at, expires_at,"
    " last_used_at, revoked_at"
)
API_KEYS = Table("api_keys", "API key", returning=KEY_COLUMNS)


def _manager_filters(ctx: Ctx[ApiServices]) -> list[Filter]:
    """A site manager sees the keys of its own sites: keys whose sites it all manages."""
    if ctx.principal.sees_all_sites():
        return []
    own = sorted(ctx.principal.site_ids)
    return [Filter("role", Role.WORKER.value), Filter("site_ids", own, op="contained_in")]


async def list_api_keys(ctx: Ctx[ApiServices]) -> Page[ApiKeyOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(PageQuery)
    async with tenant_tx(ctx, tenant_id) as conn:
        rows, cursor = await API_KEYS.page(conn, query, _manager_filters(ctx))
    items = [ApiKeyOut.model_validate(dict(r)) for r in rows]
    return Page[ApiKeyOut](items=items, next_cursor=cursor)


async def create_api_key(ctx: Ctx[ApiServices]) -> ApiKeyCreated:
    tenant_id: UUID = ctx.params["tenant_id"]
    body = await ctx.body(ApiKeyCreate)
    check_role_scope(body.role, body.site_ids)
    if not ctx.principal.sees_all_sites():
        if body.role != Role.WORKER.value:
            raise Forbidden("site managers may only issue worker keys")
        for site_id in body.site_ids:
            ctx.principal.require_site(site_id)
    credential = opaque.new_api_key()
    values = {
        "tenant_id": tenant_id,
        **body.model_dump(),
        "prefix": credential.public_id,
        "secret_hash": credential.digest,
        "created_by": ctx.principal.subject,
    }
    async with tenant_tx(ctx, tenant_id) as conn:
        await require_sites_exist(conn, body.site_ids, "body.site_ids")
        await require_cameras_in_sites(conn, body.camera_ids, body.site_ids, "body.camera_ids")
        row = await API_KEYS.insert(conn, values)
        await audit.record(
            conn,
            ctx.principal,
            "api_key.create",
            "api_key",
            row["id"],
            tenant_id,
            {"role": body.role},
        )
    return ApiKeyCreated(**dict(row), api_key=str(credential))


async def get_api_key(ctx: Ctx[ApiServices]) -> ApiKeyOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await API_KEYS.get(conn, ctx.params["key_id"], _manager_filters(ctx))
    return ApiKeyOut.model_validate(dict(row))


async def revoke_api_key(ctx: Ctx[ApiServices]) -> None:
    """Revoked, not deleted: the row stays for the audit trail and can never be used again."""
    tenant_id: UUID = ctx.params["tenant_id"]
    key_id: UUID = ctx.params["key_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        await API_KEYS.get(conn, key_id, _manager_filters(ctx))
        await conn.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1", key_id
        )
        await audit.record(conn, ctx.principal, "api_key.revoke", "api_key", key_id, tenant_id)
