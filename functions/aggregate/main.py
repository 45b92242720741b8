"""The `aggregate` function: hourly visit statistics from visit.recorded events, a cron tick and
an admin route (any range), all one idempotent re-materialisation."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.config import load_settings
from visitlens.contracts import PING_TYPE, EventType, VisitRecordedV1, parse_data
from visitlens.errors import Conflict, InvalidInput, TransientError, VisitlensError
from visitlens.http import health
from visitlens.http.body import parse_data as parse_payload
from visitlens.http.cloudevents import is_delivery, read_event, rejection
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.logs import configure
from visitlens.metrics import (
    AGGREGATION_LAG,
    AGGREGATION_OLDEST_PENDING,
    AGGREGATION_PENDING,
    note_route,
    observed,
    serve,
)
from visitlens.reports.aggregate import (
    ROUTES,
    AggregateServices,
    TickData,
    lazy_aggregate_services,
)

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
deliveries = EventTokenVerifier(settings.events, function_audience("aggregate"))


services = lazy_aggregate_services(settings)


router: Router[AggregateServices] = Router(
    ROUTES, services, lambda s: s.auth, settings.http.max_body_bytes, RateLimiter(settings.http)
)


async def _event(request: Request) -> Response:
    event = None
    try:
        deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, 64 * 1024)
        s = await services()
        kind = event["type"]
        if kind == EventType.VISIT_RECORDED_V1.value:
            data = parse_data(kind, event.data)
            assert isinstance(data, VisitRecordedV1)
            result = await s.aggregator.on_visit(data)
        elif kind == PING_TYPE:
            tick = parse_payload(event.data or {}, TickData)
            at = _tick_time(event)
            if tick.rebuilds(at):
                result = await s.aggregator.on_tick(tick.hours)  # drains first, then rebuilds
            else:
                result = await s.aggregator.drain()
            await _record_lag(s)  # once a minute, not per visit: the gauges' own query
        else:
            raise InvalidInput(
                f"aggregate takes visit.recorded and cron ticks, not {kind}", field="type"
            )
    except Conflict as error:  # a recomputation raced another: worth another delivery
        return rejection(TransientError(f"statistics busy ({error.message}); retry"), event)
    except VisitlensError as error:
        return rejection(error, event)
    return JSONResponse(result)


async def _record_lag(s: AggregateServices) -> None:
    """The platform's statistics lag, after each tick (a failed read only skips the gauges)."""
    try:
        fresh = await s.aggregator.platform_freshness()
    except VisitlensError:
        return
    now = datetime.now(UTC)
    AGGREGATION_PENDING.set(fresh["pending_hours"])
    oldest = fresh["oldest_pending"]
    AGGREGATION_OLDEST_PENDING.set((now - oldest).total_seconds() if oldest else 0)
    newest = fresh["newest_aggregated_visit_at"]
    if newest is not None:
        AGGREGATION_LAG.set((now - newest).total_seconds())


def _tick_time(event: CloudEvent) -> datetime:
    """When the PingSource fired (its ``time`` attribute), else now."""
    try:
        return datetime.fromisoformat(str(event["time"]))
    except (KeyError, ValueError):
        return datetime.now(UTC)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {"database": health.database(s.db)}


@functions_framework.aio.http
@observed("aggregate")
async def aggregate(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    if is_delivery(request):
        note_route(request, "/ (events)")
        return await _event(request)
    return await router.dispatch(request)
