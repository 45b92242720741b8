"""Helpers shared by merging and erasure: locks, gallery moves, statistics refresh, audit."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

import numpy as np

from visitlens.adapters.gallery import Gallery, GalleryRow
from visitlens.adapters.postgres import Connection, Record
from visitlens.errors import NotFound
from visitlens.identity.decisions import PersonKind
from visitlens.reports.stats import rematerialise

logger = logging.getLogger(__name__)


async def lock_customers(conn: Connection, ids: Sequence[UUID]) -> dict[UUID, Record]:
    """Lock in id order (no deadlock between two merges of the same pair); 404 for a missing one."""
    rows = await conn.fetch(
        "SELECT * FROM customers WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", list(ids)
    )
    found = {r["id"]: r for r in rows}
    for person in ids:
        if person not in found:
            raise NotFound(f"customer {person} not found")
    return found


async def refresh_stats(conn: Connection, visits: Iterable[tuple[UUID, datetime]]) -> None:
    """Re-materialise the local hours of these (site, started_at) visits."""
    by_site: dict[UUID, set[datetime]] = {}
    for site, start in visits:
        by_site.setdefault(site, set()).add(start)
    for site, starts in by_site.items():
        for start in starts:
            await rematerialise(conn, start, start + timedelta(microseconds=1), [site])


async def recompute_customer(conn: Connection, customer: UUID) -> None:
    """first/last seen and the visit count from the visits; only the earliest visit is new."""
    await conn.execute(
        "UPDATE visits SET is_new = (id = (SELECT id FROM visits WHERE customer_id = $1 "
        "ORDER BY started_at, id LIMIT 1)) WHERE customer_id = $1",
        customer,
    )
    await conn.execute(
        "UPDATE customers c SET first_seen_at = least(c.first_seen_at, v.first), "
        "last_seen_at = greatest(v.last, least(c.first_seen_at, v.first)), visit_count = v.n, "
        "updated_at = now() FROM (SELECT min(started_at) AS first, max(ended_at) AS last, "
        "count(*) AS n FROM visits WHERE customer_id = $1) v WHERE c.id = $1 AND v.n > 0",
        customer,
    )


async def move_vectors(
    gallery: Gallery, tenant_id: UUID, rows: Sequence[Record], person: UUID
) -> None:
    """Point these views (id, embedding bytes) at ``person`` in Milvus: delete, then insert."""
    views = [r for r in rows if r["embedding"] is not None]
    if not views:
        return
    await gallery.delete_views(tenant_id, [r["id"] for r in views])
    await gallery.insert(
        [
            GalleryRow(r["id"], tenant_id, person, PersonKind.CUSTOMER,
                       np.frombuffer(r["embedding"], "<f4"))
            for r in views
        ]
    )  # fmt: skip
