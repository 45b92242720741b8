"""The `aggregate` function's HTTP side: visit.recorded events, the cron tick and the admin route
(any range), all one idempotent re-materialisation of the hourly statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from cloudevents.http import CloudEvent
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.metrics import (
    AGGREGATION_LAG,
    AGGREGATION_OLDEST_PENDING,
    AGGREGATION_PENDING,
)
from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.contracts import PING_TYPE, EventType, VisitRecordedV1, parse_data
from visitlens.errors import Conflict, InvalidInput, TransientError, VisitlensError
from visitlens.http import health
from visitlens.http.body import parse_data as parse_payload
from visitlens.http.cloudevents import read_event, rejection
from visitlens.http.function import EventEndpoint
from visitlens.http.router import Ctx, Route
from visitlens.ports import Transactions
from visitlens.reports.aggregate import Aggregator, RematerialiseRequest, TickData


@dataclass(slots=True)
class AggregateServices:
    db: Transactions
    checks: Mapping[str, health.Check]
    auth: AuthService
    aggregator: Aggregator


class AggregateEvents(EventEndpoint[AggregateServices]):
    """The CloudEvent deliveries: a visit.recorded, or a PingSource tick."""

    async def __call__(self, request: Request) -> Response:
        event = None
        try:
            self._deliveries.verify(request.headers.get("authorization"))
            event = await read_event(request, 64 * 1024)
            s = await self._services()
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


class Rematerialised(BaseModel):
    rows_removed: int
    rows: int
    visits: int
    unique_rows: int


async def rematerialise_range(ctx: Ctx[AggregateServices]) -> Rematerialised:
    scope = ctx.principal.db_scope(ctx.params["tenant_id"])
    body = await ctx.body(RematerialiseRequest)
    if body.end <= body.start or (body.end - body.start).days > 400:
        raise InvalidInput("end must be after start, at most 400 days later", field="body.end")
    return Rematerialised.model_validate(await ctx.services.aggregator.on_request(scope, body))


ROUTES = [
    Route.build("POST", "/v1/aggregate/{tenant_id:uuid}/rematerialise", rematerialise_range,
                tag="reports", roles=(Role.TENANT_ADMIN,), body=RematerialiseRequest,
                response=Rematerialised,
                summary="Re-materialise the hourly statistics of a range (idempotent)"),
]  # fmt: skip
