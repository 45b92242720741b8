"""The `purge` function's HTTP side: an hourly retention tick (PingSource) purges the due tenants
within its time budget, then verifies each purged tenant's audit chain."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.metrics import (
    AUDIT_CHAIN_PROBLEMS,
    PURGE_LAST_SUCCESS,
    PURGE_SURVIVORS,
    PURGED,
)
from visitlens.contracts import PING_TYPE
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http import health
from visitlens.http.cloudevents import read_event, rejection
from visitlens.http.function import EventFunction
from visitlens.ports import DbScope, Transactions
from visitlens.retention.purge import Purger
from visitlens.tenancy.audit_chain import verify_chain

logger = logging.getLogger(__name__)
TICK_LIMIT = 16 * 1024


@dataclass(slots=True)
class PurgeServices:
    db: Transactions
    checks: Mapping[str, health.Check]
    purger: Purger


class PurgeEndpoint(EventFunction[PurgeServices]):
    """The function's one handler (behind the health probes)."""

    async def handle(self, request: Request) -> Response:
        event = None
        try:
            self._deliveries.verify(request.headers.get("authorization"))
            event = await read_event(request, TICK_LIMIT)
            if event["type"] != PING_TYPE:
                raise InvalidInput(f"purge runs on cron ticks, not {event['type']}", field="type")
            s = await self._services()
            run = await s.purger.run()
        except VisitlensError as error:
            return rejection(error, event)
        results = run.results
        PURGED.labels("objects").inc(sum(r["objects_deleted"] for r in results))
        PURGED.labels("pointers").inc(sum(r["pointers_cleared"] for r in results))
        PURGE_SURVIVORS.set(sum(r["survivors_remaining"] for r in results))
        if not run.failed:
            PURGE_LAST_SUCCESS.set_to_current_time()
        AUDIT_CHAIN_PROBLEMS.set(await _chain_problems(s, results))
        return JSONResponse({
            "tenants": results, "deferred": run.deferred,
            "failed": [str(tenant) for tenant in run.failed],
        })  # fmt: skip


async def _chain_problems(p: PurgeServices, results: list[dict[str, Any]]) -> int:
    """Each tick also verifies the audit chain of every tenant it purged (the run just appended to it):
    edited, deleted or reordered rows raise `visitlens_audit_chain_problems` and its alert."""
    problems = 0
    for result in results:
        tenant = UUID(result["tenant_id"])
        async with p.db.transaction(DbScope(tenant)) as conn:
            report = await verify_chain(conn, tenant)
        if report.problems:
            logger.error("audit chain of tenant %s: %s", tenant, "; ".join(report.problems))
        await p.purger.store.chain_verified(tenant, len(report.problems))
        problems += len(report.problems)
    return problems
