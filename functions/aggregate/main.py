"""The `aggregate` function: hourly visit statistics from visit.recorded events, a cron tick and
an admin route (any range), all one idempotent re-materialisation."""

from __future__ import annotations

from dataclasses import dataclass

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.postgres import Database
from visitlens.auth.principal import Role
from visitlens.auth.service import AuthService
from visitlens.auth.wiring import build_auth
from visitlens.config import load_settings
from visitlens.contracts import EventType, VisitRecordedV1, parse_data
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http.body import parse_data as parse_payload
from visitlens.http.cloudevents import is_cloudevent, read_event, rejection
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Ctx, Route, Router
from visitlens.logs import configure
from visitlens.reports.aggregate import Aggregator, RematerialiseRequest, TickData
from visitlens.runtime.gateway import PING_TYPE
from visitlens.runtime.lazy import Lazy

settings = load_settings()
configure(settings.log_level)


@dataclass(slots=True)
class AggregateServices:
    db: Database
    auth: AuthService
    aggregator: Aggregator


def _build() -> AggregateServices:
    db, _, auth = build_auth(settings)
    return AggregateServices(db, auth, Aggregator(db))


services = Lazy(_build)


async def rematerialise_range(ctx: Ctx[AggregateServices]) -> JSONResponse:
    scope = ctx.principal.db_scope(ctx.params["tenant_id"])
    body = await ctx.body(RematerialiseRequest)
    if body.end <= body.start or (body.end - body.start).days > 400:
        raise InvalidInput("end must be after start, at most 400 days later", field="body.end")
    return JSONResponse(await ctx.services.aggregator.on_request(scope, body))


ROUTES = [
    Route.build("POST", "/v1/aggregate/{tenant_id:uuid}/rematerialise", rematerialise_range,
                tag="reports", roles=(Role.TENANT_ADMIN,), body=RematerialiseRequest,
                summary="Re-materialise the hourly statistics of a range (idempotent)"),
]  # fmt: skip
router: Router[AggregateServices] = Router(
    ROUTES, services, lambda s: s.auth, settings.http.max_body_bytes, RateLimiter(settings.http)
)


async def _event(request: Request) -> Response:
    event = None
    try:
        event = await read_event(request, 64 * 1024)
        s = await services()
        kind = event["type"]
        if kind == EventType.VISIT_RECORDED_V1.value:
            data = parse_data(kind, event.data)
            assert isinstance(data, VisitRecordedV1)
            result = await s.aggregator.on_visit(data)
        elif kind == PING_TYPE:
            tick = parse_payload(event.data or {}, TickData)
            result = await s.aggregator.on_tick(tick.hours)
        else:
            raise InvalidInput(
                f"aggregate takes visit.recorded and cron ticks, not {kind}", field="type"
            )
    except VisitlensError as error:
        return rejection(error, event)
    return JSONResponse(result)


@functions_framework.aio.http
async def aggregate(request: Request) -> Response:
    if is_cloudevent(request):
        return await _event(request)
    return await router.dispatch(request)
