"""Audit entries for administrative actions: who did what to which object, in which tenant."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from visitlens.auth.principal import Principal
from visitlens.ports import Connection


async def record(
    conn: Connection,
    principal: Principal | None,
    action: str,
    target_type: str,
    target_id: UUID | str | None,
    tenant_id: UUID | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction, so it commits or rolls back with the change.

    ``principal`` None is the system itself (a bucket notification, a cron run). ``details`` holds
    ids, counts and changed field names only, never secrets or personal data.
    """
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, target_type, target_id,"
        " details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id,
        principal.kind.value if principal is not None else "system",
        principal.subject if principal is not None else None,
        action,
        target_type,
        str(target_id) if target_id is not None else None,
        details or {},
    )
