"""The live monitor: new and extended visits as Server-Sent Events.

PostgreSQL announces every visit change (``pg_notify('visitlens_visits', 'tenant,site')`` from a
trigger); each API instance keeps one LISTEN connection and wakes the streams of that tenant, which
then read the changed visits under row-level security. Event ids are ``updated_at|visit_id``;
a client that reconnects with ``Last-Event-ID`` gets everything after it. Reads overlap the last
few seconds (a transaction that started earlier may commit later) and drop what was already sent,
so no change is missed; a resumed stream may repeat an event of that overlap, with the same id.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from visitlens.adapters.metrics import MONITOR_BACKLOG, MONITOR_STREAMS
from visitlens.errors import InvalidInput
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Ctx
from visitlens.validation import bounded_instant

logger = logging.getLogger(__name__)
CHANNEL = "visitlens_visits"
OVERLAP = timedelta(seconds=10)
POLL_S = 5.0
"""Without any notification (a lost LISTEN connection) streams still look every few seconds."""
BATCH = 500
NIL = UUID(int=0)


class MonitorEvent(BaseModel):
    """``event: visit`` with this JSON as data."""

    visit_id: UUID
    site_id: UUID
    customer_id: UUID | None
    started_at: datetime
    ended_at: datetime
    updated_at: datetime
    is_new: bool
    sighting_count: int
    dwell_s: float
    has_snapshot: bool = False
    """A snapshot is retained: GET /v1/tenants/{tenant}/visits/{visit_id}/snapshot."""


def _event_id(updated_at: datetime, visit_id: UUID) -> str:
    return f"{updated_at.isoformat()}|{visit_id}"


def parse_event_id(value: str) -> datetime:
    try:
        stamp, _, visit = value.partition("|")
        UUID(visit)
        return bounded_instant(datetime.fromisoformat(stamp))
    except ValueError as exc:
        raise InvalidInput(
            "Last-Event-ID is not an id this stream sent", field="last-event-id"
        ) from exc


async def monitor(ctx: Ctx[ApiServices]) -> EventSourceResponse:
    tenant_id: UUID = ctx.params["tenant_id"]
    site = ctx.request.query_params.get("site_id")
    try:
        site_id = UUID(site) if site else None
    except ValueError as exc:
        raise InvalidInput("not a UUID", field="query.site_id") from exc
    principal = ctx.principal
    if site_id is not None:
        principal.require_site(site_id)
    sites = (
        [site_id]
        if site_id
        else (None if principal.sees_all_sites() else sorted(principal.site_ids))
    )
    scope = principal.db_scope(tenant_id)
    db = ctx.services.db
    last_event = ctx.request.headers.get("last-event-id")
    since = parse_event_id(last_event) if last_event else None
    feed = ctx.services.feed

    async def changes(after: tuple[datetime, UUID]) -> list[Any]:
        """One page of changes after ``after`` (keyset: updated_at, then id)."""
        async with db.transaction(scope) as conn:
            return list(
                await conn.fetch(
                    "SELECT id, site_id, customer_id, started_at, ended_at, updated_at, is_new, "
                    "sighting_count, extract(epoch FROM ended_at - started_at) AS dwell_s, "
                    "EXISTS (SELECT 1 FROM sightings s WHERE s.tenant_id = visits.tenant_id "
                    "AND s.visit_id = visits.id "
                    "AND s.snapshot_key IS NOT NULL) AS has_snapshot FROM visits WHERE (updated_at, id) > ($1, $2) "
                    "AND ($3::uuid[] IS NULL OR site_id = ANY($3::uuid[])) "
                    "ORDER BY updated_at, id LIMIT $4",
                    after[0],
                    after[1],
                    sites,
                    BATCH,
                )
            )

    async def still_active() -> bool:
        """Whether the viewer may still watch (not disabled, key not revoked, tenant active)."""
        if await ctx.services.auth.is_active(principal):
            return True
        logger.info("monitor: stream of %s ended (access revoked)", principal.subject)
        return False

    async def stream() -> AsyncIterator[ServerSentEvent]:
        wake = await feed.subscribe(tenant_id)
        MONITOR_STREAMS.inc()
        backlog = 0  # rows read and not yet sent (a slow client holds them): the queue depth
        try:
            async with db.transaction(scope) as conn:
                now = await conn.fetchval("SELECT clock_timestamp()")
            cursor: datetime = since if since is not None else now
            floor = since  # a resumed stream sends nothing at or before its Last-Event-ID
            sent: dict[tuple[UUID, datetime], datetime] = {}
            yield ServerSentEvent(event="ready", data=json.dumps({"since": cursor.isoformat()}))
            while True:
                wake.clear()
                page_after = (cursor - OVERLAP, NIL)
                while True:  # every page of the overlap window and beyond, then wait
                    rows = await changes(page_after)
                    if rows and not await still_active():  # checked before every send
                        yield ServerSentEvent(event="revoked", data="{}")
                        return
                    MONITOR_BACKLOG.inc(len(rows))
                    backlog += len(rows)
                    for row in rows:
                        MONITOR_BACKLOG.dec()
                        backlog -= 1
                        key = (row["id"], row["updated_at"])
                        if key in sent or (floor is not None and row["updated_at"] <= floor):
                            continue
                        sent[key] = row["updated_at"]
                        cursor = max(cursor, row["updated_at"])
                        data = MonitorEvent(visit_id=row["id"], **{k: row[k] for k in (
                            "site_id", "customer_id", "started_at", "ended_at", "updated_at",
                            "is_new", "sighting_count", "has_snapshot")}, dwell_s=float(row["dwell_s"]))  # fmt: skip
                        yield ServerSentEvent(
                            event="visit",
                            id=_event_id(row["updated_at"], row["id"]),
                            data=data.model_dump_json(),
                        )
                    if len(rows) < BATCH:
                        break
                    page_after = (rows[-1]["updated_at"], rows[-1]["id"])
                floor = None
                horizon = cursor - OVERLAP
                for key in [k for k, at in sent.items() if at < horizon]:
                    del sent[key]
                if not await still_active():  # and while idle, so the client learns it
                    yield ServerSentEvent(event="revoked", data="{}")
                    return
                try:
                    await asyncio.wait_for(wake.wait(), timeout=POLL_S)
                except TimeoutError:
                    pass
        finally:
            feed.unsubscribe(tenant_id, wake)
            MONITOR_STREAMS.dec()
            MONITOR_BACKLOG.dec(backlog)

    return EventSourceResponse(stream(), ping=15, headers={"cache-control": "no-store"})
