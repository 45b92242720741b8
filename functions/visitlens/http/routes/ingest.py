"""The `ingest` function's HTTP side: a face.detected CloudEvent in, a visit.recorded CloudEvent out.

Two ways in: the edge posts to ``/v1/events`` with its worker token (one event, or its backlog as
an ``application/cloudevents-batch+json`` batch with a result per event); a Broker delivers to
``/`` with its own delivery token (sender identity) and the worker's token in the ``authtoken``
extension. Either way the worker's token decides which tenant, site and camera may be written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.metrics import MATCH_DECISIONS, note_route
from visitlens.auth.service import AuthService
from visitlens.config import Settings
from visitlens.contracts import (
    EventType,
    FaceDetectedV1,
    FaceDetectedV2,
    StaffRecognizedV1,
    VisitRecordedV1,
    canonical_json,
    parse_data,
)
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http import health
from visitlens.http.cloudevents import (
    bearer,
    data_digest,
    is_batch,
    log_rejection,
    read_batch,
    read_event,
    rejection,
    reply,
)
from visitlens.http.function import EventFunction
from visitlens.http.problems import problem_document
from visitlens.identity.ingest import EventKey, IngestResult, IngestService, Submission, Track
from visitlens.ports import EventPublisher, Gallery, Transactions

EVENT_LIMIT = 256 * 1024  # ten 1024-D shots with landmarks fit comfortably
BATCH_MAX_EVENTS = 100
BATCH_LIMIT = 4 * 1024 * 1024
"""A batch is at most 100 events and 4 MiB (the edge sends smaller ones: `delivery.batch_*`)."""
DIRECT_PREFIX = "/v1/events"
REPLY_SOURCE = "/functions/ingest"


@dataclass(slots=True)
class IngestServices:
    settings: Settings
    db: Transactions
    checks: Mapping[str, health.Check]
    auth: AuthService
    gallery: Gallery
    ingest: IngestService
    publisher: EventPublisher


class IngestEndpoint(EventFunction[IngestServices]):
    """The function's one handler (behind the health probes)."""

    async def handle(self, request: Request) -> Response:
        event = None
        direct = request.url.path.startswith(DIRECT_PREFIX)
        note_route(request, DIRECT_PREFIX if direct else "/ (broker)")
        try:
            if direct and is_batch(request):
                return await self._batch(request)
            if not direct:  # a Broker delivery: the sender proves who it is first
                self._deliveries.verify(request.headers.get("authorization"))
            event = await read_event(request, EVENT_LIMIT)
            s = await self._services()
            token = request.headers.get("authorization") if direct else bearer(event)
            principal = s.auth.verify(token)  # still active? read where the event is recorded
            submission = _submission(event)
            result = await s.ingest.ingest(principal, submission.key, submission.track)
        except VisitlensError as error:
            return rejection(error, event)
        MATCH_DECISIONS.labels(result.outcome.value).inc()
        if result.visit is None:  # a staff sighting: no visit to announce, but who and how close
            return reply(*staff_recognized(submission.track, result))
        attributes, recorded = visit_recorded(submission.track, result)
        response = reply(attributes, recorded)
        if direct:
            # Sent directly (the edge), not by the Broker: the reply goes back to the caller
            # only, so the visit is also announced on the Broker (K_SINK) for `aggregate`.
            response.background = BackgroundTask(s.publisher.publish, [(attributes, recorded)])
        return response

    async def _batch(self, request: Request) -> Response:
        """An edge's backlog as one CloudEvents batch: one gallery search and one transaction,
        and a result per event in order (200 with the visit, or the problem that refused it)."""
        events = await read_batch(request, BATCH_LIMIT, BATCH_MAX_EVENTS)
        s = await self._services()
        # a sender no longer active is refused whole (401), so the edge renews its token and
        # sends the batch again rather than taking 50 refusals; checked again where recorded
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
        background = BackgroundTask(s.publisher.publish, announce) if announce else None
        return JSONResponse({"results": results}, background=background)


def _submission(event: CloudEvent) -> Submission:
    canonical = canonical_json(event.data)  # once, for the digest and the validation
    data = parse_data(event["type"], event.data, canonical)
    key = EventKey(event["source"], event["id"], event["type"], data_digest(canonical))
    if isinstance(data, FaceDetectedV2):  # v2 and v3
        return Submission(key, Track.from_v2(data))
    if isinstance(data, FaceDetectedV1):
        return Submission(key, Track.from_v1(data, event["id"]))
    raise InvalidInput(f"ingest takes face.detected events, not {event['type']}", field="type")


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


def staff_recognized(track: Track, result: IngestResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reply to a staff member's pass: a com.visitlens.staff.recognized.v1 event (counted
    nowhere, so announced nowhere)."""
    data = StaffRecognizedV1(
        tenant_id=track.tenant_id,
        site_id=track.site_id,
        camera_id=track.camera_id,
        sighting_id=result.sighting_id,
        staff_id=result.staff_id,
        similarity=result.similarity,
        first_seen=track.first_seen,
        last_seen=track.last_seen,
    )
    attributes = _reply_attributes(
        EventType.STAFF_RECOGNIZED_V1, f"staff-{result.sighting_id}", str(result.sighting_id)
    )
    return attributes, data.model_dump(mode="json")


def visit_recorded(track: Track, result: IngestResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reply: attributes and data of a com.visitlens.visit.recorded.v1 event."""
    assert result.visit is not None and result.customer_id is not None
    visit = result.visit
    data = VisitRecordedV1(
        tenant_id=track.tenant_id,
        site_id=track.site_id,
        camera_id=track.camera_id,
        visit_id=visit.visit_id,
        customer_id=result.customer_id,
        sighting_id=result.sighting_id,
        started_at=visit.started_at,
        ended_at=visit.ended_at,
        is_new_customer=result.is_new_customer,
        opened_visit=visit.opened,
        similarity=result.similarity,
        dwell_s=(visit.ended_at - visit.started_at).total_seconds(),
        visit_count=max(1, visit.visit_count),
    )
    attributes = _reply_attributes(
        EventType.VISIT_RECORDED_V1, f"visit-{result.sighting_id}", str(visit.visit_id)
    )
    return attributes, data.model_dump(mode="json")


def _reply_attributes(kind: EventType, event_id: str, subject: str) -> dict[str, Any]:
    """The context attributes of a reply event of ``kind`` (JSON data, its schema named)."""
    return {
        "type": kind.value,
        "source": REPLY_SOURCE,
        "id": event_id,
        "subject": subject,
        "dataschema": kind.dataschema,
        "datacontenttype": "application/json",
    }
