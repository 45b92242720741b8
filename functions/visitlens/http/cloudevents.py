"""CloudEvents over HTTP for functions that reply (Knative routes a subscriber's reply event):
read binary or structured events within a size limit, answer with a binary-mode event, and turn
errors into problem documents with a logged rejection."""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx
from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_http
from starlette.requests import Request
from starlette.responses import Response
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from visitlens.errors import MalformedBody, VisitlensError
from visitlens.http.body import read_limited
from visitlens.http.problems import problem_response

logger = logging.getLogger(__name__)

AUTH_EXTENSION = "authtoken"
"""Extension attribute that carries the worker's bearer token through a broker (never logged)."""


async def read_event(request: Request, limit: int) -> CloudEvent:
    body = await read_limited(request, limit)
    try:
        return from_http(dict(request.headers), body)
    except CloudEventError as exc:
        raise MalformedBody(f"not a CloudEvent: {exc}") from exc


def is_cloudevent(request: Request) -> bool:
    """Binary mode (``ce-specversion`` header) or structured mode (its media type)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return "ce-specversion" in request.headers or media_type == "application/cloudevents+json"


def bearer(request: Request, event: CloudEvent) -> str | None:
    """The caller's token: the Authorization header, else the ``authtoken`` extension."""
    header = request.headers.get("authorization")
    if header:
        return header
    token = event.get(AUTH_EXTENSION)
    return f"Bearer {token}" if token else None


def reply(attributes: dict[str, Any], data: dict[str, Any]) -> Response:
    headers, body = to_binary(CloudEvent(attributes, data))
    return Response(body, status_code=200, headers=headers)


async def publish(attributes: dict[str, Any], data: dict[str, Any]) -> bool:
    """Post an event to ``K_SINK`` (a Knative SinkBinding, or the local gateway's Broker), a few
    tries; False (logged) when there is no sink or it stays unavailable — consumers that must not
    miss anything also reconcile on a schedule (the aggregate tick)."""
    sink = os.environ.get("K_SINK")
    if not sink:
        return False
    headers, body = to_binary(CloudEvent(attributes, data))
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
            retry=retry_if_exception_type(httpx.HTTPError),
            reraise=True,
        ):
            with attempt:
                async with httpx.AsyncClient(timeout=5) as client:
                    response = await client.post(sink, headers=dict(headers), content=body)
                    response.raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("event %s not published: %s", attributes.get("id"), type(exc).__name__)
        return False
    return True


def rejection(error: VisitlensError, event: CloudEvent | None) -> Response:
    """A 4xx (final, the broker must not retry) or 5xx (retried), logged with its reason."""
    event_id = event["id"] if event is not None else "-"
    event_type = event["type"] if event is not None else "-"
    level = logging.WARNING if error.status < 500 else logging.ERROR
    logger.log(
        level, "rejected event id=%s type=%s: %d %s (%s)",
        event_id, event_type, error.status, error.code, error.message,
    )  # fmt: skip
    return problem_response(error)
