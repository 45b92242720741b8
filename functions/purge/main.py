"""The `purge` function: the nightly retention run (a PingSource tick)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.adapters.postgres import Database
from visitlens.config import load_settings
from visitlens.contracts import PING_TYPE
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http import health
from visitlens.http.cloudevents import read_event, rejection
from visitlens.logs import configure
from visitlens.metrics import (
    AUDIT_CHAIN_PROBLEMS,
    PURGE_LAST_SUCCESS,
    PURGE_SURVIVORS,
    PURGED,
    observed,
    serve,
)
from visitlens.retention.purge import Purger
from visitlens.runtime.lazy import Lazy
from visitlens.tenancy.audit_chain import verify_chain
from visitlens.tenancy.scope import DbScope

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
logger = logging.getLogger(__name__)
deliveries = EventTokenVerifier(settings.events, function_audience("purge"))


def _build() -> Purger:
    from visitlens.stack import s3
    from visitlens.stack.endpoints import resolve, s3_endpoint

    db = Database(resolve(settings).app_dsn, settings.database)
    return Purger(db, s3.client(settings.s3, s3_endpoint(settings)), settings.s3)


purger = Lazy(_build)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await purger()
    return {
        "database": health.database(s.db),
        "object_store": health.bucket(s.s3, s.s3_settings.raw_bucket),
    }


@functions_framework.aio.http
@observed("purge")
async def purge(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    event = None
    try:
        deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, 16 * 1024)
        if event["type"] != PING_TYPE:
            raise InvalidInput(f"purge runs on cron ticks, not {event['type']}", field="type")
        results = await (await purger()).run()
    except VisitlensError as error:
        return rejection(error, event)
    PURGED.labels("objects").inc(sum(r["objects_deleted"] for r in results))
    PURGED.labels("pointers").inc(sum(r["pointers_cleared"] for r in results))
    PURGE_SURVIVORS.set(sum(r["survivors_remaining"] for r in results))
    PURGE_LAST_SUCCESS.set_to_current_time()
    AUDIT_CHAIN_PROBLEMS.set(await _chain_problems(await purger(), results))
    return JSONResponse({"tenants": results})


async def _chain_problems(p: Purger, results: list[dict[str, Any]]) -> int:
    """The nightly run also verifies each tenant's audit chain (the run just appended to it):
    edited, deleted or reordered rows raise `visitlens_audit_chain_problems` and its alert."""
    problems = 0
    for result in results:
        tenant = UUID(result["tenant_id"])
        async with p.db.transaction(DbScope(tenant)) as conn:
            report = await verify_chain(conn, tenant)
        if report.problems:
            logger.error("audit chain of tenant %s: %s", tenant, "; ".join(report.problems))
        problems += len(report.problems)
    return problems
