"""The `ingest` function: a face.detected CloudEvent in, a visit.recorded CloudEvent out."""

from __future__ import annotations

import functions_framework.aio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from visitlens.config import load_settings
from visitlens.contracts import FaceDetectedV1, FaceDetectedV2, parse_data
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http.cloudevents import bearer, publish, read_event, rejection, reply
from visitlens.identity.ingest import EventKey, Track
from visitlens.identity.services import lazy_ingest_services, visit_recorded
from visitlens.logs import configure

settings = load_settings()
configure(settings.log_level)
services = lazy_ingest_services(settings)
EVENT_LIMIT = 256 * 1024  # ten 1024-D shots with landmarks fit comfortably


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    event = None
    try:
        event = await read_event(request, EVENT_LIMIT)
        s = await services()
        principal = s.auth.authenticate(bearer(request, event))
        data = parse_data(event["type"], event.data)
        key = EventKey(event["source"], event["id"], event["type"])
        if isinstance(data, FaceDetectedV2):
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
    if result.visit is None:  # a staff sighting: counted, but no visit to announce
        return Response(status_code=204)
    attributes, recorded = visit_recorded(track, result)
    response = reply(attributes, recorded)
    if request.url.path.startswith("/v1/events"):
        # Sent directly (the edge), not by the Broker: the reply goes back to the caller only, so
        # the visit is also announced on the Broker (K_SINK) for `aggregate` and others.
        response.background = BackgroundTask(publish, attributes, recorded)
    return response
