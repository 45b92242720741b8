"""Reading a tenant's audit log: the entries, newest first and filterable, and the verification of
its hash chain (the same check as ``visitlens audit verify``, for this one tenant)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from visitlens.http.api.scope import tenant_tx
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Ctx
from visitlens.schemas import Input, Output
from visitlens.tenancy.audit_chain import verify_chain
from visitlens.validation import Instant


class AuditQuery(Input):
    action: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[a-z_]+(\.[a-z_]+)*\.?$",
        description="an action (`user.create`) or a prefix ending in a dot (`user.`)",
    )
    actor_id: UUID | None = None
    target_type: str | None = Field(default=None, max_length=50, pattern=r"^[a-z_]+$")
    since: Instant | None = None
    until: Instant | None = None
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(
        default=None, pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page"
    )


class AuditEntryOut(Output):
    id: int
    seq: int | None = Field(description="position in the tenant's chain (None: before the chain)")
    at: datetime
    actor_kind: str
    actor_id: UUID | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


class AuditPage(Output):
    items: list[AuditEntryOut]
    next_cursor: str | None


class AuditVerification(Output):
    ok: bool = Field(description="no row edited, missing or out of order")
    rows: int
    unchained: int = Field(description="rows from before the chain existed (listed, not judged)")
    head_seq: int
    head_hash: str = Field(description="keep it elsewhere: deleting the newest rows leaves no gap")
    problems: list[str]
    verified_at: datetime


async def list_entries(ctx: Ctx[ApiServices]) -> AuditPage:
    tenant_id: UUID = ctx.params["tenant_id"]
    query = ctx.query(AuditQuery)
    action = query.action
    prefix = action is not None and action.endswith(".")
    async with tenant_tx(ctx, tenant_id) as conn:
        rows = await conn.fetch(
            "SELECT id, seq, at, actor_kind, actor_id, action, target_type, target_id, details "
            "FROM audit_log WHERE tenant_id = $1 "
            "AND ($2::text IS NULL OR (CASE WHEN $3 THEN starts_with(action, $2) "
            "ELSE action = $2 END)) "
            "AND ($4::uuid IS NULL OR actor_id = $4) "
            "AND ($5::text IS NULL OR target_type = $5) "
            "AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7) "
            "AND ($8::bigint IS NULL OR id < $8) ORDER BY id DESC LIMIT $9",
            tenant_id, action, prefix, query.actor_id, query.target_type, query.since,
            query.until, int(query.cursor) if query.cursor else None, query.limit + 1,
        )  # fmt: skip
    items = [AuditEntryOut.model_validate(dict(r)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return AuditPage(items=items, next_cursor=str(items[-1].id) if more and items else None)


async def verify(ctx: Ctx[ApiServices]) -> AuditVerification:
    tenant_id: UUID = ctx.params["tenant_id"]
    async with tenant_tx(ctx, tenant_id) as conn:
        report = await verify_chain(conn, tenant_id)
    return AuditVerification(
        ok=not report.problems, rows=report.rows, unchained=report.unchained,
        head_seq=report.head_seq, head_hash=report.head_hash, problems=report.problems,
        verified_at=datetime.now(UTC),
    )  # fmt: skip
