"""Transactions and row filters derived from the caller, for the tenant named in the path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from visitlens.auth.principal import Principal
from visitlens.errors import InvalidInput
from visitlens.http.api.services import ApiServices
from visitlens.http.api.store import Filter
from visitlens.http.router import Ctx
from visitlens.ports import Connection


@asynccontextmanager
async def tenant_tx(ctx: Ctx[ApiServices], tenant_id: UUID) -> AsyncIterator[Connection]:
    """A transaction under RLS for ``tenant_id``; 403 unless the caller belongs to it."""
    async with ctx.services.db.transaction(ctx.principal.db_scope(tenant_id)) as conn:
        yield conn


def site_filters(principal: Principal, column: str = "site_id") -> list[Filter]:
    """Site managers and workers see only their own sites' rows."""
    if principal.sees_all_sites():
        return []
    return [Filter(column, sorted(principal.site_ids), op="any")]


async def require_sites_exist(conn: Connection, site_ids: list[UUID], field: str) -> None:
    if not site_ids:
        return
    found = await conn.fetchval("SELECT count(*) FROM sites WHERE id = ANY($1)", site_ids)
    if found != len(set(site_ids)):
        raise InvalidInput("unknown site in this tenant", field=field)


async def require_cameras_in_sites(
    conn: Connection, camera_ids: list[UUID], site_ids: list[UUID], field: str
) -> None:
    if not camera_ids:
        return
    found = await conn.fetchval(
        "SELECT count(*) FROM cameras WHERE id = ANY($1) AND site_id = ANY($2)",
        camera_ids,
        site_ids,
    )
    if found != len(set(camera_ids)):
        raise InvalidInput("camera unknown or not in the given sites", field=field)


def check_role_scope(role: str, site_ids: list[UUID], field: str = "body.site_ids") -> None:
    """tenant_admin: no site list; site_manager: at least one site; worker: exactly one."""
    if role == "tenant_admin" and site_ids:
        raise InvalidInput("a tenant_admin covers every site; leave site_ids empty", field=field)
    if role == "site_manager" and not site_ids:
        raise InvalidInput("a site_manager needs at least one site", field=field)
    if role == "worker" and len(set(site_ids)) != 1:
        raise InvalidInput("a worker belongs to exactly one site", field=field)
