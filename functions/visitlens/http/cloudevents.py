"""CloudEvents over HTTP for functions that reply (Knative routes a subscriber's reply event):
read binary or structured events within a size limit, answer with a binary-mode event, and turn
errors into problem documents with a logged rejection."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_dict, from_http
from starlette.requests import Request
from starlette.responses import Response

from visitlens.adapters.logs import log_context, traced
from visitlens.adapters.metrics import EVENTS_REJECTED
from visitlens.contracts import PING_TYPE, EventType
from visitlens.errors import (
    InvalidInput,
    MalformedBody,
    PayloadTooLarge,
    UnsupportedMediaType,
    VisitlensError,
)
from visitlens.http.body import read_limited
from visitlens.http.problems import problem_response

logger = logging.getLogger(__name__)

AUTH_EXTENSION = "authtoken"
"""Extension attribute that carries the worker's bearer token through a broker (never logged)."""


MAX_ATTRIBUTE_LENGTH = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"


async def read_event(request: Request, limit: int) -> CloudEvent:
    """A binary or structured CloudEvent within ``limit`` bytes whose context attributes are
    usable as keys: ``id``, ``source`` and ``type`` present, short, free of control characters."""
    body = await read_limited(request, limit)
    _require_json(request)
    try:
        event = from_http(dict(request.headers), body)
    except (CloudEventError, ValueError, TypeError) as exc:  # the SDK raises all three
        raise MalformedBody(f"not a CloudEvent: {exc}") from exc
    except RecursionError as exc:
        raise MalformedBody("not a CloudEvent: JSON nested too deeply") from exc
    event = check_attributes(event)
    log_context(str(event["id"]), _traceparent(event))
    return event


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _require_json(request: Request) -> None:
    """Structured mode is ``application/cloudevents+json``; in binary mode the content type is
    the data's, and every event visitlens takes carries JSON data: ``application/json``, a
    ``+json`` type, or none (a PingSource may leave its ``contentType`` unset; CloudEvents then
    implies JSON). Another type (the probe's ``text/plain``) is 415, before the SDK guesses."""
    media_type = _media_type(request)
    if "ce-specversion" not in request.headers:  # structured, or no CloudEvent at all (400)
        return
    if not media_type or media_type == "application/json" or media_type.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"a CloudEvent is {STRUCTURED_MEDIA_TYPE}, or in binary mode has JSON data "
        f"(application/json), not {media_type or 'no content type'}"
    )


def is_batch(request: Request) -> bool:
    return _media_type(request) == BATCH_MEDIA_TYPE


async def read_batch(
    request: Request, limit: int, max_events: int
) -> list[CloudEvent | VisitlensError]:
    """A CloudEvents batch (JSON array of structured-mode events) within ``limit`` bytes and
    ``max_events`` events: each element is an event or the reason it is not one."""
    body = await read_limited(request, limit)
    try:
        elements = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedBody(f"not a CloudEvents batch: {type(exc).__name__}") from exc
    if not isinstance(elements, list) or not elements:
        raise MalformedBody("a CloudEvents batch is a non-empty JSON array of events")
    if len(elements) > max_events:
        raise PayloadTooLarge(f"a batch holds at most {max_events} events, not {len(elements)}")
    events: list[CloudEvent | VisitlensError] = []
    for element in elements:
        try:
            if not isinstance(element, dict):
                raise MalformedBody("a batch element must be a structured-mode CloudEvent")
            try:
                event = from_dict(element)
            except (CloudEventError, ValueError, TypeError) as exc:
                raise MalformedBody(f"not a CloudEvent: {exc}") from exc
            events.append(check_attributes(event))
        except VisitlensError as error:
            events.append(error)
    return events


def check_attributes(event: CloudEvent) -> CloudEvent:
    """``id``, ``source`` and ``type`` present, short, free of control characters."""
    for name in ("id", "source", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"the CloudEvent attribute {name!r} must not be empty", field=name)
        if len(value) > MAX_ATTRIBUTE_LENGTH or _CONTROL.search(value):
            raise InvalidInput(
                f"the CloudEvent attribute {name!r} must be at most {MAX_ATTRIBUTE_LENGTH} "
                "printable characters",
                field=name,
            )
    return event


def data_digest(canonical: str) -> bytes:
    """SHA-256 of an event's data in canonical JSON (:func:`visitlens.contracts.canonical_json`):
    what makes two deliveries the same event."""
    return hashlib.sha256(canonical.encode()).digest()


def is_cloudevent(request: Request) -> bool:
    """Binary mode (``ce-specversion`` header) or structured mode (its media type)."""
    return "ce-specversion" in request.headers or _media_type(request) == STRUCTURED_MEDIA_TYPE


def is_delivery(request: Request) -> bool:
    """A CloudEvent posted to the function's root: what a Trigger, a PingSource or the bucket
    bridge sends. CloudEvent headers on any other path are an ordinary HTTP request."""
    return request.url.path == "/" and is_cloudevent(request)


def bearer(event: CloudEvent) -> str | None:
    """The worker's token carried through a broker in the ``authtoken`` extension."""
    token = event.get(AUTH_EXTENSION)
    return f"Bearer {token}" if token else None


def _traceparent(event: CloudEvent) -> str | None:
    value = event.get("traceparent")
    return value if isinstance(value, str) else None


def reply(attributes: dict[str, Any], data: dict[str, Any]) -> Response:
    headers, body = to_binary(CloudEvent(traced(attributes), data))
    return Response(body, status_code=200, headers=headers)


class DeliveryVerifier(Protocol):
    """Checks the token a Broker, PingSource or bucket bridge presents with a delivery."""

    def verify(self, authorization: str | None) -> Mapping[str, Any]: ...


def rejection(error: VisitlensError, event: CloudEvent | None) -> Response:
    """A 4xx (final, the broker must not retry) or 5xx (retried), logged with its reason."""
    log_rejection(error, event)
    return problem_response(error)


KNOWN_TYPES = frozenset({*(t.value for t in EventType), PING_TYPE})
"""Event types that name a metric's label; anything else a sender invents is `other`."""


def log_rejection(error: VisitlensError, event: CloudEvent | None) -> None:
    """The logged reason an event was refused (one event of a batch has no response of its own)."""
    event_id = event["id"] if event is not None else "-"
    event_type = event["type"] if event is not None else "-"
    EVENTS_REJECTED.labels(event_type if event_type in KNOWN_TYPES else "other", error.code).inc()
    level = logging.WARNING if error.status < 500 else logging.ERROR
    logger.log(
        level, "rejected event id=%s type=%s: %d %s (%s)",
        event_id, event_type, error.status, error.code, error.message,
    )  # fmt: skip
