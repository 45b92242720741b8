"""The whole HTTP surface (every HTTP function's routes) as one OpenAPI document."""

from __future__ import annotations

import functools
from typing import Any

from visitlens import __version__
from visitlens.contracts import EventType
from visitlens.http import openapi
from visitlens.http.router import Route


def all_routes() -> list[Route]:
    from visitlens.http.routes.aggregate import ROUTES as AGGREGATE
    from visitlens.http.routes.api import ROUTES as API
    from visitlens.http.routes.match import ROUTES as MATCH
    from visitlens.http.routes.persons import ERASE_ROUTES, MERGE_ROUTES
    from visitlens.http.routes.staff import ROUTES as STAFF

    return [*API, *MATCH, *STAFF, *MERGE_ROUTES, *ERASE_ROUTES, *AGGREGATE]


@functools.cache
def openapi_document() -> dict[str, Any]:
    document = openapi.build(all_routes(), "visitlens API", __version__)
    return openapi.add_event_routes(document, EVENT_ROUTES)


EVENT_ROUTES = [
    openapi.EventRoute(
        path="/v1/events",
        summary="A face.detected event from an edge worker (its worker token): counted exactly "
        "once; the reply is a visit.recorded CloudEvent. An edge's backlog may come as one "
        "application/cloudevents-batch+json request (at most 100 events, 4 MiB): the answer is "
        "then JSON, {results: [...]} with one entry per event in order, each with its status and "
        "either the outcome (sighting, customer, visit, replayed) or the problem that refused it",
        event_types=(
            EventType.FACE_DETECTED_V3, EventType.FACE_DETECTED_V2, EventType.FACE_DETECTED_V1
        ),
        responses={"200": "Counted (or the stored answer to a replay): visit.recorded in binary "
                          "mode; for a staff member no visit but JSON saying which one and how "
                          "close (outcome, staff_id, similarity), so misattribution can be audited",
                   "409": "The same event id was already counted with other data"},
    ),
    openapi.EventRoute(
        path="/brokers/{broker}",
        summary="The Broker's ingress (local runner; Knative's broker-ingress in a cluster): a "
        "CloudEvent from a publisher holding a token for the broker's audience",
        event_types=tuple(EventType),
        responses={"202": "Accepted for delivery to every matching trigger"},
        security="publisher",
    ),
    openapi.EventRoute(
        path="/minio/events",
        summary="MinIO's bucket-notification webhook (local runner; the minio-bridge Service in a "
        "cluster), authenticated by the webhook's auth_token",
        event_types=(),
        responses={"202": "One CloudEvent per matching record, queued for delivery"},
        security="webhook",
    ),
]  # fmt: skip
