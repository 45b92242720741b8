"""The `ingest` function: a face.detected CloudEvent in, a visit.recorded CloudEvent out.

Two ways in: the edge posts to ``/v1/events`` with its worker token (one event, or its backlog as
an ``application/cloudevents-batch+json`` batch with a result per event); a Broker delivers to
``/`` with its own delivery token (sender identity) and the worker's token in the ``authtoken``
extension. Either way the worker's token decides which tenant, site and camera may be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import functions_framework.aio
from cloudevents.http import CloudEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.config import load_settings
from visitlens.contracts import FaceDetectedV1, FaceDetectedV2, parse_data
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http import health
from visitlens.http.cloudevents import (
    bearer,
    data_digest,
    is_batch,
    log_rejection,
    publish,
    publish_all,
    read_batch,
    read_event,
    rejection,
    reply,
)
from visitlens.http.problems import problem_document
from visitlens.identity.ingest import EventKey, IngestResult, Submission, Track
from visitlens.identity.services import lazy_ingest_services, visit_recorded
from visitlens.logs import configure
from visitlens.metrics import MATCH_DECISIONS, note_route, observed, serve

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
services = lazy_ingest_services(settings)
deliveries = EventTokenVerifier(settings.events, function_audience("ingest"))
EVENT_LIMIT = 256 * 1024  # ten 1024-D shots with landmarks fit comfortably
BATCH_MAX_EVENTS = 100
BATCH_LIMIT = 4 * 1024 * 1024
"""A batch is at most 100 events and 4 MiB (the edge sends smaller ones: `delivery.batch_*`)."""
DIRECT_PREFIX = "/v1/events"


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {"database": health.database(s.db), "gallery": s.gallery.ping}


@functions_framework.aio.http
@observed("ingest")
async def ingest(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    event = None
    direct = request.url.path.startswith(DIRECT_PREFIX)
    note_route(request, DIRECT_PREFIX if direct else "/ (broker)")
    try:
        if direct and is_batch(request):
            return await _batch(request)
        if not direct:  # a Broker delivery: the sender proves who it is first
            deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, EVENT_LIMIT)
        s = await services()
        token = request.headers.get("authorization") if direct else bearer(event)
        principal = await s.auth.authenticate(token)
        submission = _submission(event)
        result = await s.ingest.ingest(principal, submission.key, submission.track)
    except VisitlensError as error:
        return rejection(error, event)
    MATCH_DECISIONS.labels(result.outcome.value).inc()
    if result.visit is None:  # a staff sighting: no visit to announce, but who and how close
        return JSONResponse(_summary(result))
    attributes, recorded = visit_recorded(submission.track, result)
    response = reply(attributes, recorded)
    if direct:
        # Sent directly (the edge), not by the Broker: the reply goes back to the caller only, so
        # the visit is also announced on the Broker (K_SINK) for `aggregate` and others.
        response.background = BackgroundTask(publish, settings.events, attributes, recorded)
    return response


def _submission(event: CloudEvent) -> Submission:
    data = parse_data(event["type"], event.data)
    key = EventKey(event["source"], event["id"], event["type"], data_digest(event))
    if isinstance(data, FaceDetectedV2):  # v2 and v3
        return Submission(key, Track.from_v2(data))
    if isinstance(data, FaceDetectedV1):
        return Submission(key, Track.from_v1(data, event["id"]))
    raise InvalidInput(f"ingest takes face.detected events, not {event['type']}", field="type")


async def _batch(request: Request) -> Response:
    """An edge's backlog as one CloudEvents batch: one gallery search and one transaction, and a
    result per event in order (200 with the visit, or the problem that refused it)."""
    events = await read_batch(request, BATCH_LIMIT, BATCH_MAX_EVENTS)
    s = await services()
    principal = await s.auth.authenticate(request.headers.get("authorization"))
    results: list[dict[str, Any]] = [{} for _ in events]
    accepted: list[tuple[int, CloudEvent, Submission]] = []
    for n, event in enumerate(events):
        if isinstance(event, VisitlensError):
            results[n] = _refused(event, None)
            continue
        try:
            accepted.append((n, event, _submission(event)))
        except VisitlensError as error:
            results[n] = _refused(error, event)
    outcomes = await s.ingest.ingest_many(principal, [sub for _, _, sub in accepted])
    announce = []
    for (n, event, submission), outcome in zip(accepted, outcomes, strict=True):
        if isinstance(outcome, VisitlensError):
            results[n] = _refused(outcome, event)
            continue
        MATCH_DECISIONS.labels(outcome.outcome.value).inc()
        results[n] = {"id": event["id"], "source": event["source"], "status": 200,
                      **_summary(outcome)}  # fmt: skip
        if outcome.visit is not None:
            announce.append(visit_recorded(submission.track, outcome))
    return JSONResponse(
        {"results": results},
        background=BackgroundTask(publish_all, settings.events, announce) if announce else None,
    )


def _refused(error: VisitlensError, event: CloudEvent | None) -> dict[str, Any]:
    log_rejection(error, event)
    return {
        "id": event["id"] if event is not None else None,
        "source": event["source"] if event is not None else None,
        "status": error.status,
        "problem": problem_document(error),
    }


def _summary(result: IngestResult) -> dict[str, Any]:
    visit = result.visit
    return {
        "outcome": result.outcome.value,
        "sighting_id": str(result.sighting_id),
        "customer_id": str(result.customer_id) if result.customer_id else None,
        "staff_id": str(result.staff_id) if result.staff_id else None,
        "visit_id": str(visit.visit_id) if visit else None,
        "is_new_customer": result.is_new_customer,
        "similarity": result.similarity,
        "replayed": result.replayed,
    }
