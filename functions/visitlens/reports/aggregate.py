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

from visitlens.adapters.postgres import Database
from visitlens.api.schemas import Input
from visitlens.contracts import VisitRecordedV1
from visitlens.reports.stats import rematerialise
from visitlens.tenancy.scope import DbScope

logger = logging.getLogger(__name__)
DEFAULT_HOURS = 48


class RematerialiseRequest(Input):
    start: AwareDatetime
    end: AwareDatetime
    site_id: UUID | None = None


class TickData(Input):
    hours: int = Field(default=DEFAULT_HOURS, ge=1, le=24 * 400)


@dataclass(slots=True)
class Aggregator:
    db: Database

    async def on_visit(self, event: VisitRecordedV1) -> dict[str, int]:
        start = event.started_at
        async with self.db.transaction(DbScope(event.tenant_id)) as conn:
            return await rematerialise(
                conn, start, start + timedelta(microseconds=1), [event.site_id]
            )

    async def on_tick(self, hours: int, now: datetime | None = None) -> dict[str, Any]:
        end = now or datetime.now(UTC)
        start = end - timedelta(hours=hours)
        async with self.db.transaction(DbScope(None, system_admin=True)) as conn:
            tenants = [r["id"] for r in await conn.fetch("SELECT id FROM tenants WHERE active")]
        totals = {"tenants": len(tenants), "rows": 0, "visits": 0}
        for tenant_id in tenants:
            async with self.db.transaction(DbScope(tenant_id)) as conn:
                result = await rematerialise(conn, start, end)
            totals["rows"] += result["rows"]
            totals["visits"] += result["visits"]
        logger.info(
            "aggregate tick: %d tenants, %d hourly rows, %d visits over %dh",
            totals["tenants"], totals["rows"], totals["visits"], hours,
        )  # fmt: skip
        return totals

    async def on_request(self, scope: DbScope, request: RematerialiseRequest) -> dict[str, int]:
        sites = [request.site_id] if request.site_id else None
        async with self.db.transaction(scope) as conn:
            return await rematerialise(conn, request.start, request.end, sites)
