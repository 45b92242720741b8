"""The `purge` function: the nightly retention run (a PingSource tick)."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.adapters.postgres import Database
from visitlens.config import load_settings
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http.cloudevents import read_event, rejection
from visitlens.logs import configure
from visitlens.retention.purge import Purger
from visitlens.runtime.gateway import PING_TYPE
from visitlens.runtime.lazy import Lazy

settings = load_settings()
configure(settings.log_level)
deliveries = EventTokenVerifier(settings.events, function_audience("purge"))


def _build() -> Purger:
    from visitlens.stack import s3
    from visitlens.stack.endpoints import resolve, s3_endpoint

    db = Database(resolve(settings).app_dsn, settings.database)
    return Purger(db, s3.client(settings.s3, s3_endpoint(settings)), settings.s3)


purger = Lazy(_build)


@functions_framework.aio.http
async def purge(request: Request) -> Response:
    event = None
    try:
        deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, 16 * 1024)
        if event["type"] != PING_TYPE:
            raise InvalidInput(f"purge runs on cron ticks, not {event['type']}", field="type")
        results = await (await purger()).run()
    except VisitlensError as error:
        return rejection(error, event)
    return JSONResponse({"tenants": results})
