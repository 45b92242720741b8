"""The `ingest` function: a face.detected CloudEvent in, a visit.recorded CloudEvent out.

Two ways in: the edge posts to ``/v1/events`` with its worker token; a Broker delivers to ``/``
with its own delivery token (sender identity) and the worker's token in the ``authtoken``
extension. Either way the worker's token decides which tenant, site and camera may be written.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.config import load_settings
from visitlens.contracts import FaceDetectedV1, FaceDetectedV2, parse_data
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http.cloudevents import (
    bearer,
    data_digest,
    publish,
    read_event,
    rejection,
    reply,
)
from visitlens.identity.ingest import EventKey, Track
from visitlens.identity.services import lazy_ingest_services, visit_recorded
from visitlens.logs import configure

settings = load_settings()
configure(settings.log_level)
services = lazy_ingest_services(settings)
deliveries = EventTokenVerifier(settings.events, function_audience("ingest"))
EVENT_LIMIT = 256 * 1024  # ten 1024-D shots with landmarks fit comfortably
DIRECT_PREFIX = "/v1/events"


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    event = None
    direct = request.url.path.startswith(DIRECT_PREFIX)
    try:
        if not direct:  # a Broker delivery: the sender proves who it is first
            deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, EVENT_LIMIT)
        s = await services()
        token = request.headers.get("authorization") if direct else bearer(event)
        principal = await s.auth.authenticate(token)
        data = parse_data(event["type"], event.data)
        key = EventKey(event["source"], event["id"], event["type"], data_digest(event))
        if isinstance(data, FaceDetectedV2):  # v2 and v3
            track = Track.from_v2(data)
        elif isinstance(data, FaceDetectedV1):
            track = Track.from_v1(data, event["id"])
        else:
            raise InvalidInput(
                f"ingest takes face.detected events, not {event['type']}", field="type"
            )
        result = await s.ingest.ingest(principal, key, track)
    except VisitlensError as error:
        return rejection(error, event)
    if result.visit is None:  # a staff sighting: no visit to announce, but who and how close
        return JSONResponse(
            {
                "outcome": result.outcome.value,
                "sighting_id": str(result.sighting_id),
                "staff_id": str(result.staff_id) if result.staff_id else None,
                "similarity": result.similarity,
                "replayed": result.replayed,
            }
        )
    attributes, recorded = visit_recorded(track, result)
    response = reply(attributes, recorded)
    if direct:
        # Sent directly (the edge), not by the Broker: the reply goes back to the caller only, so
        # the visit is also announced on the Broker (K_SINK) for `aggregate` and others.
        response.background = BackgroundTask(publish, settings.events, attributes, recorded)
    return response
