"""Verify the audit log's hash chains (one per tenant, one for platform entries).

Each row stores ``hash = sha256(prev_hash || canonical text of the row)`` and its ``seq`` in its
chain (set by a trigger under an advisory lock). Verification recomputes every hash in PostgreSQL
(the same ``audit_row_text`` the trigger used) and reports:

- ``edited``: the stored hash does not match the row's content;
- ``missing``: a gap in ``seq`` (a row was deleted);
- ``broken_link``: ``prev_hash`` is not the previous row's hash (deleted or reordered rows);
- ``unchained``: rows written before the chain existed (migration 0005), listed, not judged.

Deleting the *newest* rows of a chain leaves no gap; keep the printed head hashes elsewhere (a
ticket, a WORM bucket) and compare them with the next run to detect that as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from visitlens.ports import Connection, DbScope, Transactions

PLATFORM = UUID(int=0)


@dataclass(slots=True)
class ChainReport:
    chain: str
    rows: int = 0
    unchained: int = 0
    head_seq: int = 0
    head_hash: str = ""
    problems: list[str] = field(default_factory=list)


async def verify(db: Transactions) -> list[ChainReport]:
    """The platform's chain, then every tenant's, each read under its own scope."""
    async with db.transaction(DbScope(None, system_admin=True)) as conn:
        tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants ORDER BY id")]
        reports = [await verify_chain(conn, None)]
    for tenant in tenants:
        async with db.transaction(DbScope(tenant)) as conn:
            reports.append(await verify_chain(conn, tenant))
    return reports


async def verify_chain(conn: Connection, tenant: UUID | None) -> ChainReport:
    """One chain, read in the caller's transaction (RLS decides which rows it sees)."""
    report = ChainReport(str(tenant) if tenant else "platform")
    rows = await conn.fetch(
        "SELECT id, seq, prev_hash, hash, "
        "sha256(prev_hash || convert_to(audit_row_text(a), 'UTF8')) AS recomputed "
        "FROM audit_log a WHERE tenant_id IS NOT DISTINCT FROM $1 ORDER BY seq NULLS FIRST, id",
        tenant,
    )
    previous_hash = b""
    previous_seq = 0
    for row in rows:
        if row["seq"] is None:
            report.unchained += 1
            continue
        report.rows += 1
        seq = row["seq"]
        if seq != previous_seq + 1:
            report.problems.append(
                f"missing: seq {previous_seq + 1}..{seq - 1} (before id {row['id']})"
            )
        elif bytes(row["prev_hash"]) != previous_hash:
            report.problems.append(f"broken_link: seq {seq} (id {row['id']})")
        if bytes(row["hash"]) != bytes(row["recomputed"]):
            report.problems.append(f"edited: seq {seq} (id {row['id']})")
        previous_hash = bytes(row["hash"])
        previous_seq = seq
    report.head_seq = previous_seq
    report.head_hash = previous_hash.hex()
    return report
