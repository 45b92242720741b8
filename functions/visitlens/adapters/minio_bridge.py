"""MinIO's webhook target → CloudEvents on the Broker (the in-cluster form of the local gateway's
MinIO bridge, with the same conversion): each record becomes one binary-mode CloudEvent whose data
is MinIO's own record JSON, posted to ``K_SINK`` (a Knative SinkBinding or the Broker's ingress).

MinIO sends its webhook target's ``auth_token`` as the Authorization header (``Bearer <token>``);
the bridge refuses anything else (``VISITLENS_EVENTS__MINIO_TOKEN``), and presents its own
publisher token (``VISITLENS_EVENTS__PUBLISH_TOKEN_FILE``) to the Broker."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_plus

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from visitlens.auth.secrets import read_token_file, shared_token_matches
from visitlens.config import EventAuthSettings
from visitlens.contracts import MINIO_TYPE_PREFIX

logger = logging.getLogger(__name__)
LIMIT = 1024 * 1024


def create_app(settings: EventAuthSettings) -> Starlette:
    client = httpx.AsyncClient(timeout=10)
    sink = settings.sink or ""
    token = settings.minio_token.get_secret_value() if settings.minio_token else ""

    async def receive(request: Request) -> JSONResponse:
        if not sink or not shared_token_matches(request.headers.get("authorization"), token):
            return JSONResponse({"detail": "missing or wrong bearer token"}, 401)
        body = await request.body()
        if len(body) > LIMIT:
            return JSONResponse({"detail": "notification too large"}, 413)
        try:
            records: list[dict[str, Any]] = json.loads(body)["Records"]
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            logger.warning("rejected a MinIO notification: %s", type(exc).__name__)
            return JSONResponse({"detail": "not a MinIO event notification"}, 400)
        published = 0
        for record in records:
            try:
                name = record["eventName"]
                bucket = record["s3"]["bucket"]["name"]
                key = unquote_plus(record["s3"]["object"]["key"])
            except (KeyError, TypeError):
                logger.warning("MinIO record without eventName/bucket/key skipped")
                continue
            headers, data = to_binary(minio_event(record, name, bucket, key))
            publisher = read_token_file(settings.publish_token_file)
            if publisher:
                headers["authorization"] = f"Bearer {publisher}"
            response = await client.post(sink, headers=dict(headers), content=data)
            if response.is_error:  # MinIO retries the webhook (it keeps a queue_dir) on 5xx
                logger.error("broker refused a MinIO event: %d", response.status_code)
                return JSONResponse({"detail": "broker unavailable"}, 503)
            published += 1
        return JSONResponse({"published": published}, 202)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(
        routes=[Route("/", receive, methods=["POST"]), Route("/healthz", health)],
        lifespan=lifespan,
    )


def minio_event(record: dict[str, Any], name: str, bucket: str, key: str) -> CloudEvent:
    """A MinIO record as a CloudEvent; ``data`` is MinIO's own record JSON, unchanged."""
    object_info = record["s3"].get("object", {})
    event_id = f"{bucket}/{key}@{object_info.get('sequencer') or object_info.get('eTag') or ''}"
    attributes = {
        "type": MINIO_TYPE_PREFIX + name,
        "source": f"minio:s3:::{bucket}",
        "subject": key,
        "id": event_id if object_info else uuid.uuid4().hex,
        "datacontenttype": "application/json",
    }
    if record.get("eventTime"):
        attributes["time"] = record["eventTime"]
    return CloudEvent(attributes, record)
