"""Users of a tenant (tenant admins manage them). Passwords are argon2id hashes, never returned."""

from __future__ import annotations

from uuid import UUID

from visitlens.auth.principal import Principal, Role
from visitlens.errors import Conflict
from visitlens.http.api.scope import check_role_scope, require_sites_exist, tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.api.store import Filter, Table
from visitlens.http.router import Ctx
from visitlens.pagination import Page, PageQuery
from visitlens.ports import Connection
from visitlens.schemas import UserCreate, UserOut, UserUpdate
from visitlens.tenancy import audit

USER_COLUMNS = (
    "id, tenant_id, email, display_name, role, site_ids, disabled, created_at, updated_at,"
    " last_login_at"
)
USERS = Table("users", "user", returning=USER_COLUMNS)


async def _lock_active_admins(conn: Connection, tenant_id: UUID) -> None:
    """The tenant's active admins locked for this transaction: two admins disabling each other
    at once are worked one after the other, so :func:`_keep_an_admin` sees the other's change."""
    await conn.execute(
        "SELECT 1 FROM users WHERE tenant_id = $1 AND role = 'tenant_admin' AND NOT disabled "
        "FOR UPDATE",
        tenant_id,
    )


async def _keep_an_admin(conn: Connection, principal: Principal, tenant_id: UUID) -> None:
    """A tenant's users may not leave it without an active tenant admin (the probe's fuzzer locked
    itself out that way): 409, and the transaction's change is undone. A system admin may."""
    if principal.role is Role.SYSTEM_ADMIN:
        return
    left = await conn.fetchval(
        "SELECT count(*) FROM users WHERE tenant_id = $1 AND role = 'tenant_admin' "
        "AND NOT disabled",
        tenant_id,
    )
    if not left:
        raise Conflict(
            "this is the tenant's last active tenant admin: make another user tenant admin first"
        )


async def list_users(ctx: Ctx[ApiServices]) -> Page[UserOut]:
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(PageQuery)
    async with tenant_tx(ctx, tenant_id) as conn:
        rows, cursor = await USERS.page(conn, query, [Filter("tenant_id", tenant_id)])
    return Page[UserOut](items=[UserOut.model_validate(dict(r)) for r in rows], next_cursor=cursor)


async def create_user(ctx: Ctx[ApiServices]) -> UserOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    body = await ctx.body(UserCreate)
    check_role_scope(body.role, body.site_ids)
    values = body.model_dump(exclude={"password"})
    values["email"] = str(body.email).lower()
    values["password_hash"] = await ctx.services.auth.hash_password(body.password)
    async with tenant_tx(ctx, tenant_id) as conn:
        await require_sites_exist(conn, body.site_ids, "body.site_ids")
        row = await USERS.insert(conn, {"tenant_id": tenant_id, **values})
        await audit.record(
            conn, ctx.principal, "user.create", "user", row["id"], tenant_id, {"role": body.role}
        )
    return UserOut.model_validate(dict(row))


async def get_user(ctx: Ctx[ApiServices]) -> UserOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        row = await USERS.get(conn, ctx.params["user_id"], [Filter("tenant_id", tenant_id)])
    return UserOut.model_validate(dict(row))


async def update_user(ctx: Ctx[ApiServices]) -> UserOut:
    tenant_id: UUID = ctx.params["tenant_id"]
    user_id: UUID = ctx.params["user_id"]
    body = await ctx.body(UserUpdate)
    changes = body.model_dump(exclude_unset=True, exclude={"password"})
    if body.password is not None:
        changes["password_hash"] = await ctx.services.auth.hash_password(body.password)
    async with tenant_tx(ctx, tenant_id) as conn:
        await _lock_active_admins(conn, tenant_id)
        current = await USERS.get(conn, user_id, [Filter("tenant_id", tenant_id)])
        role = changes.get("role", current["role"])
        site_ids = changes.get("site_ids", list(current["site_ids"]))
        if "role" in changes or "site_ids" in changes:
            check_role_scope(role, site_ids)
            await require_sites_exist(conn, site_ids, "body.site_ids")
        row = await USERS.update(conn, user_id, changes, [Filter("tenant_id", tenant_id)])
        await _keep_an_admin(conn, ctx.principal, tenant_id)
        if body.disabled or body.password is not None:
            # A disabled account or a new password ends every session of the old one.
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now() "
                "WHERE user_id = $1 AND revoked_at IS NULL",
                user_id,
            )
        await audit.record(
            conn,
            ctx.principal,
            "user.update",
            "user",
            user_id,
            tenant_id,
            {"fields": sorted(k if k != "password_hash" else "password" for k in changes)},
        )
    return UserOut.model_validate(dict(row))


async def delete_user(ctx: Ctx[ApiServices]) -> None:
    tenant_id: UUID = ctx.params["tenant_id"]
    user_id: UUID = ctx.params["user_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        await _lock_active_admins(conn, tenant_id)
        await USERS.delete(conn, user_id, [Filter("tenant_id", tenant_id)])
        await _keep_an_admin(conn, ctx.principal, tenant_id)
        await audit.record(conn, ctx.principal, "user.delete", "user", user_id, tenant_id)
