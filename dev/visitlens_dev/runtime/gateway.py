"""The local stand-in for Knative's ingress, Broker/Trigger and PingSource, and a MinIO webhook bridge.

It reads the same trigger declarations as the deployment files and routes to functions that run
as their own ``functions-framework --asgi`` processes:

- HTTP: a request whose path starts with a declared prefix is proxied to that function.
- ``POST /brokers/<name>``: a CloudEvent (binary or structured) is accepted with 202 and delivered
  to every trigger whose filters match exactly, in binary mode, retried with backoff on 5xx and
  connection errors (never on 4xx); a CloudEvent in the reply goes back into the broker.
- Cron: a PingSource CloudEvent (``dev.knative.sources.ping``) is sent on each schedule tick.
- ``POST /minio/events``: MinIO's own webhook JSON becomes one CloudEvent per record, delivered to
  functions whose bucket trigger matches bucket, prefix, suffix and event name.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import httpx
from cloudevents.conversion import to_binary
from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent, from_http
from croniter import croniter
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from visitlens.adapters.event_tokens import (
    LOCAL_ISSUER,
    EventTokenIssuer,
    EventTokenVerifier,
    broker_audience,
    function_audience,
)
from visitlens.adapters.minio_bridge import minio_event
from visitlens.auth.secrets import shared_token_matches
from visitlens.config import EventAuthSettings
from visitlens.contracts import PING_TYPE
from visitlens.errors import Unauthenticated
from visitlens.http.console import CONSOLE_HEADERS
from visitlens.http.headers import API_HEADERS, HSTS, over_tls
from visitlens_dev.runtime.spec import (
    BucketTrigger,
    CloudEventTrigger,
    CronTrigger,
    FunctionSpec,
    HttpTrigger,
)

logger = logging.getLogger(__name__)

_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f]")
_HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length",
    "date", "server",
}  # fmt: skip


class RetryableDelivery(Exception):
    """The subscriber answered 5xx/429 or could not be reached: deliver again later."""


@dataclass(frozen=True, slots=True)
class Deployed:
    """A function and the base URL its process listens on."""

    spec: FunctionSpec
    url: str


@dataclass(slots=True)
class DeliveryPolicy:
    attempts: int = 6
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    timeout_s: float = 30.0
    max_reply_depth: int = 8


@dataclass(slots=True)
class Gateway:
    """Authenticates like the cluster does: publishers into a broker present a token for the
    broker's audience, the MinIO webhook presents its ``auth_token``, and every delivery to a
    function carries a token for that function's audience, signed by ``issuer``."""

    functions: list[Deployed]
    issuer: EventTokenIssuer
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    max_body_bytes: int = 16 * 1024 * 1024
    web_dir: Path | None = None
    """The built web console (web/dist), served at ``/`` beside the functions, as the cluster's
    static web service is behind the same HTTPRoute."""
    _client: httpx.AsyncClient | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _publishers: dict[str, EventTokenVerifier] = field(default_factory=dict)

    def publisher_token(self, name: str, broker: str = "default", ttl_s: int = 7 * 86_400) -> str:
        """A token a local publisher (a function, a test) presents to ``broker``."""
        return self.issuer.token(broker_audience(broker), f"local:publisher:{name}", ttl_s)

    def _verify_publisher(self, broker: str, authorization: str | None) -> None:
        if broker not in self._publishers:
            settings = EventAuthSettings(issuer=LOCAL_ISSUER, jwks_file=self.issuer.jwks_path)
            self._publishers[broker] = EventTokenVerifier(settings, broker_audience(broker))
        self._publishers[broker].verify(authorization)

    # --- lifecycle ----------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._client = httpx.AsyncClient(
            timeout=self.policy.timeout_s,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S),
        )
        crons = [
            asyncio.create_task(self._cron_loop(d, t), name=f"cron:{t.name}")
            for d in self.functions
            for t in d.spec.triggers
            if isinstance(t, CronTrigger)
        ]
        try:
            yield
        finally:
            for task in crons:
                task.cancel()
            await asyncio.gather(*crons, return_exceptions=True)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=self.policy.timeout_s)
            await self._client.aclose()

    def app(self) -> Starlette:
        routes: list[Route | Mount] = [
            Route("/brokers/{broker}", self.broker_ingress, methods=["POST"]),
            Route("/minio/events", self.minio_events, methods=["POST"]),
        ]
        if self.web_dir is not None and (self.web_dir / "assets").is_dir():
            routes.append(Mount("/assets", _WebAssets(directory=self.web_dir / "assets")))
        routes.append(
            Route(
                "/{path:path}",
                self.http_ingress,
                methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
            )
        )
        return Starlette(
            routes=routes, lifespan=self.lifespan, middleware=[Middleware(_SecurityHeaders)]
        )

    @property
    def client(self) -> httpx.AsyncClient:
        assert self._client is not None, "gateway used outside its lifespan"
        return self._client

    # --- HTTP ingress -------------------------------------------------------------------

    def route_http(self, path: str) -> Deployed | None:
        best: tuple[int, Deployed] | None = None
        for deployed in self.functions:
            for trigger in deployed.spec.triggers:
                if not isinstance(trigger, HttpTrigger):
                    continue
                for prefix in trigger.path_prefixes:
                    if path.startswith(prefix) and (best is None or len(prefix) > best[0]):
                        best = (len(prefix), deployed)
        return best[1] if best else None

    async def http_ingress(self, request: Request) -> Response:
        # The raw path: URL parsing silently drops tabs and newlines from request.url.
        if _UNSAFE_PATH.search(str(request.scope.get("path", ""))):
            return JSONResponse(
                {"detail": "the path contains control characters", "field": "path"}, 400
            )
        target = self.route_http(request.url.path)
        if target is None:
            if self._is_console_page(request):
                return _console_page(self.web_dir)
            return JSONResponse({"detail": f"no function serves {request.url.path}"}, 404)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        if request.client is not None:  # as an ingress does: the function sees who called
            prior = request.headers.get("x-forwarded-for")
            peer = request.client.host
            headers["x-forwarded-for"] = f"{prior}, {peer}" if prior else peer
        url = target.url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        # An idempotent request is read whole so that it can be sent again: once, if the pooled
        # keep-alive connection it went out on had just been closed by the function (the
        # probe's 1 in 150: ReadError before any answer). Anything else streams through.
        again = _idempotent(request)
        content = await request.body() if again else request.stream()
        for attempt in (1, 2):
            try:
                upstream = await self.client.send(
                    self.client.build_request(request.method, url, headers=headers,
                                              content=content),
                    stream=True,  # streamed back: Server-Sent Events and large exports
                )  # fmt: skip
                break
            except httpx.InvalidURL:
                return JSONResponse({"detail": "not a valid URL", "field": "path"}, 400)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if again and attempt == 1:
                    logger.info("stale connection to %s (%s): sent once more",
                                target.spec.name, type(exc).__name__)  # fmt: skip
                    continue
                return _unavailable(target, exc)
            except httpx.HTTPError as exc:
                return _unavailable(target, exc)
        response = StreamingResponse(
            upstream.aiter_bytes(),  # decoded: content-encoding is not passed on
            upstream.status_code,
            background=BackgroundTask(upstream.aclose),
        )
        # every header line as sent: a mapping would fold two Set-Cookie lines into one
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in upstream.headers.multi_items()
            if k.lower() not in _HOP_BY_HOP
            and k.lower() not in ("content-encoding", "content-length")
        ]
        return response

    def _is_console_page(self, request: Request) -> bool:
        """A page of the console (its client-side routes all load index.html), never an API
        path: /v1/…, /brokers/…, /minio/… and /.well-known/… stay the functions' 404s."""
        return (
            self.web_dir is not None
            and request.method in ("GET", "HEAD")
            and not request.url.path.startswith(("/v1/", "/brokers/", "/minio/", "/.well-known/"))
            and (self.web_dir / "index.html").is_file()
        )

    # --- Broker / Trigger ---------------------------------------------------------------

    def subscribers(self, broker: str, event: CloudEvent) -> list[Deployed]:
        attributes = event.get_attributes()
        out = []
        for deployed in self.functions:
            for trigger in deployed.spec.triggers:
                if (
                    isinstance(trigger, CloudEventTrigger)
                    and trigger.broker == broker
                    and all(str(attributes.get(k)) == v for k, v in trigger.filters.items())
                ):
                    out.append(deployed)
                    break
        return out

    async def broker_ingress(self, request: Request) -> Response:
        broker = request.path_params["broker"]
        try:
            self._verify_publisher(broker, request.headers.get("authorization"))
        except Unauthenticated as exc:
            logger.warning("broker %s refused a publisher: %s", broker, exc.message)
            return JSONResponse({"detail": exc.message}, 401)
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return JSONResponse({"detail": "event too large"}, 413)
        try:
            event = from_http(dict(request.headers), body)
        except (CloudEventError, ValueError, TypeError, RecursionError) as exc:
            logger.warning("broker rejected a malformed CloudEvent: %s", type(exc).__name__)
            return JSONResponse({"detail": f"not a CloudEvent: {exc}"}, 400)
        self.publish(broker, event)
        return Response(status_code=202)

    def publish(self, broker: str, event: CloudEvent, depth: int = 0) -> int:
        """Fan ``event`` out to its subscribers in the background; returns how many there are."""
        targets = self.subscribers(broker, event)
        if not targets:
            logger.info("event type=%s id=%s has no subscriber", event["type"], event["id"])
        for deployed in targets:
            self._spawn(self._deliver_and_route_reply(broker, deployed, event, depth))
        return len(targets)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_and_route_reply(
        self, broker: str, deployed: Deployed, event: CloudEvent, depth: int
    ) -> None:
        reply = await self.deliver(deployed, event)
        if reply is None:
            return
        if depth >= self.policy.max_reply_depth:
            logger.error("reply chain deeper than %d dropped at %s", depth, deployed.spec.name)
            return
        self.publish(broker, reply, depth + 1)

    async def deliver(self, deployed: Deployed, event: CloudEvent) -> CloudEvent | None:
        """POST ``event`` in binary mode; retry transient failures; return a reply event if any."""
        headers, body = to_binary(event)
        name = deployed.spec.name
        token = self.issuer.token(function_audience(name), f"local:trigger:{name}")
        headers["authorization"] = f"Bearer {token}"
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.policy.initial_backoff_s,
                max=self.policy.max_backoff_s,
                jitter=self.policy.initial_backoff_s,
            ),
            retry=retry_if_exception_type(RetryableDelivery),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._post(deployed.url + "/", headers, body)
        except RetryError:
            logger.error(
                "dead letter: event type=%s id=%s to %s after %d attempts",
                event["type"],
                event["id"],
                name,
                self.policy.attempts,
            )
            return None
        if response.status_code >= 400:
            logger.warning(
                "%s rejected event type=%s id=%s: %d %s",
                name,
                event["type"],
                event["id"],
                response.status_code,
                response.text[:300],
            )
            return None
        logger.info("delivered event type=%s id=%s to %s", event["type"], event["id"], name)
        return _reply_event(response)

    async def _post(self, url: str, headers: dict[str, str], body: Any) -> httpx.Response:
        try:
            response = await self.client.post(url, headers=headers, content=body)
        except httpx.TransportError as exc:
            raise RetryableDelivery(type(exc).__name__) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableDelivery(str(response.status_code))
        return response

    # --- PingSource ---------------------------------------------------------------------

    async def _cron_loop(self, deployed: Deployed, trigger: CronTrigger) -> None:
        zone = ZoneInfo(trigger.timezone)
        schedule = croniter(trigger.schedule, datetime.now(zone))
        while True:
            due: datetime = schedule.get_next(datetime)
            await asyncio.sleep(max(0.0, (due - datetime.now(zone)).total_seconds()))
            self._spawn(self._deliver_quietly(deployed, ping_event(trigger, due)))

    async def _deliver_quietly(self, deployed: Deployed, event: CloudEvent) -> None:
        await self.deliver(deployed, event)

    async def fire_cron(self, function: str, trigger_name: str) -> CloudEvent | None:
        """Deliver one tick now (for `visitlens dev` operators and tests)."""
        for deployed in self.functions:
            for trigger in deployed.spec.triggers:
                if (
                    isinstance(trigger, CronTrigger)
                    and deployed.spec.name == function
                    and trigger.name == trigger_name
                ):
                    return await self.deliver(deployed, ping_event(trigger, datetime.now(UTC)))
        raise LookupError(f"no cron trigger {trigger_name!r} on function {function!r}")

    # --- MinIO bucket notifications -----------------------------------------------------

    async def minio_events(self, request: Request) -> Response:
        if not shared_token_matches(request.headers.get("authorization"), self.issuer.minio_token):
            logger.warning("refused a MinIO notification without the webhook's auth_token")
            return JSONResponse({"detail": "missing or wrong webhook token"}, 401)
        body = await request.body()
        if len(body) > self.max_body_bytes:
            return JSONResponse({"detail": "notification too large"}, 413)
        try:
            payload = json.loads(body)
            records = payload["Records"]
            if not isinstance(records, list):
                raise TypeError("Records is not a list")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # JSON, UTF-8, shape
            logger.warning("rejected a MinIO notification: %s", exc)
            return JSONResponse({"detail": f"not a MinIO event notification: {exc}"}, 400)
        delivered = 0
        for record in records:
            for deployed, event in self.minio_deliveries(record):
                self._spawn(self._deliver_quietly(deployed, event))
                delivered += 1
        return JSONResponse({"deliveries": delivered}, status_code=202)

    def minio_deliveries(self, record: dict[str, Any]) -> Iterable[tuple[Deployed, CloudEvent]]:
        try:
            name = record["eventName"]
            bucket = record["s3"]["bucket"]["name"]
            key = unquote_plus(record["s3"]["object"]["key"])  # MinIO URL-encodes keys
        except (KeyError, TypeError):
            logger.warning("MinIO record without eventName/bucket/key skipped")
            return
        for deployed in self.functions:
            for trigger in deployed.spec.triggers:
                if isinstance(trigger, BucketTrigger) and _bucket_matches(
                    trigger, name, bucket, key
                ):
                    yield deployed, minio_event(record, name, bucket, key)
                    break


class _SecurityHeaders:
    """The functions' security headers on every answer the gateway gives, its own (404, 503,
    the Broker's 202) and the console's included, where the answer did not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = over_tls(Request(scope))

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in API_HEADERS.items():
                    headers.setdefault(name, value)
                if tls:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, sending)


KEEPALIVE_EXPIRY_S = 1.0
"""Pooled connections to the functions are dropped after this long idle: well before the function
closes an idle keep-alive connection. ``functions-framework --asgi`` serves through gunicorn's
UvicornWorker with gunicorn's default ``keepalive`` of 2 s (its CLI has no option to change it);
at an equal 2 s a POST — the console's token refresh — now and then went out on a connection the
function was closing and came back 503. A contract test keeps this below gunicorn's default."""


def _idempotent(request: Request) -> bool:
    """Safe to send twice: an idempotent method, or a CloudEvent (a function counts an event id
    once, so a second delivery of one is answered with the first's result)."""
    if request.method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
        return True
    kind = request.headers.get("content-type", "")
    return "ce-id" in request.headers or kind.startswith("application/cloudevents")


def _unavailable(target: Deployed, exc: Exception) -> Response:
    logger.warning("function %s unreachable: %s", target.spec.name, type(exc).__name__)
    return JSONResponse(
        {"detail": f"function {target.spec.name} unavailable"}, 503, headers={"retry-after": "1"}
    )


def _console_page(web_dir: Path | None) -> Response:
    assert web_dir is not None
    # index.html names the hashed assets of this build: never cached
    return FileResponse(
        web_dir / "index.html", headers={**CONSOLE_HEADERS, "cache-control": "no-cache"}
    )


class _WebAssets(StaticFiles):
    """The console's hashed, immutable assets with the console's security headers."""

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        if response.status_code == 200:
            response.headers["cache-control"] = "public, max-age=31536000, immutable"
        return response


def _bucket_matches(trigger: BucketTrigger, name: str, bucket: str, key: str) -> bool:
    return (
        trigger.bucket == bucket
        and key.startswith(trigger.prefix)
        and key.endswith(trigger.suffix)
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in trigger.events)
    )


def ping_event(trigger: CronTrigger, due: datetime) -> CloudEvent:
    attributes = {
        "type": PING_TYPE,
        "source": f"/apis/v1/namespaces/visitlens/pingsources/{trigger.name}",
        "id": f"{trigger.name}-{due.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}",
        "time": due.astimezone(UTC).isoformat(),
        "datacontenttype": "application/json",
    }
    return CloudEvent(attributes, dict(trigger.data))


def _reply_event(response: httpx.Response) -> CloudEvent | None:
    """A reply CloudEvent (binary or structured), as Knative routes a subscriber's reply."""
    headers = dict(response.headers)
    structured = headers.get("content-type", "").startswith("application/cloudevents+json")
    if not structured and "ce-id" not in headers:
        return None
    try:
        return from_http(headers, response.content)
    except (CloudEventError, ValueError, TypeError):
        logger.warning("reply looked like a CloudEvent but did not parse; dropped")
        return None
