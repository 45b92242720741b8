"""The `aggregate` capability: keep ``visit_stats_hourly`` current.

- on ``visit.recorded``: the local hour of that visit's start, at its site;
- on the cron tick (PingSource data ``{"hours": N}``): the last N hours of every active tenant,
  which also catches late events and changes made by merges or erasures;
- on request (HTTP, tenant admin): any range, for back-fills.
Every path is the same idempotent re-materialisation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, Field

from visitlens.contracts import VisitRecordedV1
from visitlens.ports import DbScope, Transactions
from visitlens.reports.stats import drain_dirty, freshness, refresh_uniques, rematerialise
from visitlens.schemas import Input

logger = logging.getLogger(__name__)
DEFAULT_HOURS = 48
CHUNK = timedelta(days=7)
"""Long ranges are rebuilt a week per transaction."""
MAINTENANCE_TIMEOUT = "300s"


class RematerialiseRequest(Input):
    start: AwareDatetime
    end: AwareDatetime
    site_id: UUID | None = None


class TickData(Input):
    """A PingSource tick: every tick drains the marked hours; a tick at ``rebuild_minute`` (or
    any tick without one) also rebuilds the last ``hours`` (0: never)."""

    hours: int = Field(default=DEFAULT_HOURS, ge=0, le=24 * 400)
    rebuild_minute: int | None = Field(default=None, ge=0, le=59)

    def rebuilds(self, at: datetime) -> bool:
        return self.hours > 0 and (self.rebuild_minute is None or at.minute == self.rebuild_minute)


@dataclass(slots=True)
class Aggregator:
    db: Transactions

    async def on_visit(self, event: VisitRecordedV1) -> dict[str, int]:
        """Every marked hour of the tenant (this visit's among them), and this visit's own hour
        (a visit from an older ingest may carry no mark)."""
        start = event.started_at
        async with self.db.transaction(DbScope(event.tenant_id)) as conn:
            drained = await drain_dirty(conn)
            own = await rematerialise(
                conn, start, start + timedelta(microseconds=1), [event.site_id]
            )
        return {**own, "dirty_hours": drained["hours"]}

    async def platform_freshness(self) -> dict[str, Any]:
        """Every tenant's hours still pending, the oldest mark, and the newest aggregated visit
        change (each tenant under its own scope, as row-level security sees it; the per-tenant
        ``freshness`` the reports show, on its indexes)."""
        async with self.db.transaction(DbScope(None, system_admin=True)) as conn:
            tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants")]
        pending, oldest, newest = 0, None, None
        for tenant_id in tenants:
            async with self.db.transaction(DbScope(tenant_id)) as conn:
                fresh = await freshness(conn)
                marked = await conn.fetchval("SELECT min(marked_at) FROM stats_dirty")
            pending += fresh["pending_hours"]
            oldest = min(filter(None, (oldest, marked)), default=None)
            newest = max(filter(None, (newest, fresh["newest_aggregated_visit_at"])), default=None)
        return {"pending_hours": pending, "oldest_pending": oldest,
                "newest_aggregated_visit_at": newest}  # fmt: skip

    async def drain(self) -> dict[str, int]:
        """Every tenant's marked hours (the minutely tick): nothing waits for a manual call."""
        async with self.db.transaction(DbScope(None, system_admin=True)) as conn:
            tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants")]
        totals = {"tenants": len(tenants), "hours": 0, "visits": 0}
        for tenant_id in tenants:
            async with self.db.transaction(DbScope(tenant_id)) as conn:
                part = await drain_dirty(conn)
            totals["hours"] += part["hours"]
            totals["visits"] += part["visits"]
        return totals

    async def on_tick(self, hours: int, now: datetime | None = None) -> dict[str, Any]:
        end = now or datetime.now(UTC)
        start = end - timedelta(hours=hours)
        async with self.db.transaction(DbScope(None, system_admin=True)) as conn:
            tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants WHERE active")]
        totals = {"tenants": len(tenants), "rows": 0, "visits": 0}
        for tenant_id in tenants:
            async with self.db.transaction(DbScope(tenant_id)) as conn:
                await drain_dirty(conn)  # late and replayed visits, however old
            result = await self.rebuild(DbScope(tenant_id), start, end, None)
            totals["rows"] += result["rows"]
            totals["visits"] += result["visits"]
        logger.info(
            "aggregate tick: %d tenants, %d hourly rows, %d visits over %dh",
            totals["tenants"], totals["rows"], totals["visits"], hours,
        )  # fmt: skip
        return totals

    async def on_request(self, scope: DbScope, request: RematerialiseRequest) -> dict[str, int]:
        sites = [request.site_id] if request.site_id else None
        return await self.rebuild(scope, request.start, request.end, sites)

    async def rebuild(
        self, scope: DbScope, start: datetime, end: datetime, sites: list[UUID] | None
    ) -> dict[str, int]:
        """A week per transaction: hours and days, then the weeks and months they touch.

        A background job: its statements may run up to ``MAINTENANCE_TIMEOUT`` (requests keep the
        pool's short timeout)."""
        totals = {"rows_removed": 0, "rows": 0, "visits": 0, "unique_rows": 0}
        cursor = start
        while cursor < end:
            upto = min(end, cursor + CHUNK)
            async with self.db.transaction(scope) as conn:
                await conn.execute(f"SET LOCAL statement_timeout = '{MAINTENANCE_TIMEOUT}'")
                part = await rematerialise(conn, cursor, upto, sites, ("hour", "day"))
                for key in totals:
                    totals[key] += part[key]
                totals["unique_rows"] += await refresh_uniques(
                    conn, cursor, upto, sites, ("week", "month")
                )
            cursor = upto
        return totals
