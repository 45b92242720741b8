"""Prometheus metrics of the functions (prometheus-client), one registry per process.

Labels are bounded: a function's name, a route *template* (never a raw path), a method, a status,
an outcome or an error code. Never a tenant, a person, a token or an embedding.

Exposition: each function serves ``/metrics`` on its own port (``metrics.port``; 0 = off) beside
the HTTP port. In a cluster the pods carry ``prometheus.io/scrape``/``port`` annotations and a
NetworkPolicy admits only the monitoring namespace to that port; the HTTPRoute never routes to it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable

from prometheus_client import Counter, Gauge, Histogram, start_http_server
from starlette.requests import Request
from starlette.responses import Response

from visitlens.adapters.logs import log_context, reset_log_context
from visitlens.config import MetricsSettings

logger = logging.getLogger(__name__)

ROUTE_KEY = "visitlens.route"
"""Where a handler notes the route template it matched (request.scope)."""

REQUESTS = Counter(
    "visitlens_http_requests",
    "HTTP requests handled, by function, route template, method and status",
    ["function", "route", "method", "status"],
)
LATENCY = Histogram(
    "visitlens_http_request_duration_seconds",
    "Time to answer an HTTP request (the function's own share, without the queue-proxy's)",
    ["function", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30),
)
EVENTS_REJECTED = Counter(
    "visitlens_events_rejected",
    "CloudEvents refused, by event type and the reason's code (each is also logged)",
    ["type", "reason"],
)
MATCH_DECISIONS = Counter(
    "visitlens_match_decisions",
    "Identity decisions of ingested passes: new_customer, returning_customer, staff, ...",
    ["outcome"],
)
GALLERY_SEARCH = Histogram(
    "visitlens_gallery_search_seconds",
    "One gallery (Milvus) search call, however many vectors it carries",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
AGGREGATION_LAG = Gauge(
    "visitlens_aggregation_lag_seconds",
    "now - the newest visit change the hourly statistics include (after each aggregate run)",
)
AGGREGATION_OLDEST_PENDING = Gauge(
    "visitlens_aggregation_oldest_pending_seconds",
    "now - when the oldest not-yet-aggregated hour was marked; 0 when nothing waits (alerted on:"
    " unlike the lag, it does not grow in a quiet night)",
)
AGGREGATION_PENDING = Gauge(
    "visitlens_aggregation_pending_hours", "hours with visit changes not yet aggregated"
)
PURGED = Counter(
    "visitlens_purged", "Objects and rows removed by the retention run, by kind", ["kind"]
)
PURGE_SURVIVORS = Gauge(
    "visitlens_purge_survivors",
    "Expired items the last retention run could not remove (retried next run)",
)
PURGE_LAST_SUCCESS = Gauge(
    "visitlens_purge_last_success_timestamp_seconds", "When the last retention run finished"
)
MONITOR_STREAMS = Gauge("visitlens_monitor_streams", "Open live-monitor (SSE) streams")
MONITOR_BACKLOG = Gauge(
    "visitlens_monitor_backlog",
    "Visit changes read but not yet sent, summed over the open streams (the SSE queue depth)",
)
AUDIT_CHAIN_PROBLEMS = Gauge(
    "visitlens_audit_chain_problems",
    "Problems the last audit-chain verification found (edited, missing, reordered rows)",
)

Handler = Callable[[Request], Awaitable[Response]]


def observed(function: str) -> Callable[[Handler], Handler]:
    """Count and time every request of a function's handler (status 500 when it raised), and set
    the log context: the CloudEvent id and W3C trace of the request (a new trace without one)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            _serve_here()
            started = time.perf_counter()
            reset_log_context()  # what this request handles: its event id and trace
            headers = request.headers
            log_context(
                headers.get("ce-id"), headers.get("ce-traceparent") or headers.get("traceparent")
            )
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            finally:
                route = str(request.scope.get(ROUTE_KEY, "unmatched"))
                REQUESTS.labels(function, route, request.method, str(status)).inc()
                LATENCY.labels(function, route, request.method).observe(
                    time.perf_counter() - started
                )

        return run

    return wrap


def note_route(request: Request, template: str) -> None:
    request.scope[ROUTE_KEY] = template


_serving: set[int] = set()
_wanted: MetricsSettings | None = None
_started_in: int | None = None


def serve(settings: MetricsSettings) -> None:
    """Serve /metrics from the process that handles the requests (a no-op when the port is 0).

    functions-framework imports the function in gunicorn's arbiter and handles requests in a
    forked worker, where a thread started at import does not exist and whose counters the arbiter
    never sees: so the server starts in the serving process, on its first request (Knative's
    readiness probe is one). One worker per pod (``WORKERS=1``, the default): pods scale."""
    global _wanted
    _wanted = settings


def start(settings: MetricsSettings) -> None:
    """Start the exposition server now, once per port in this process."""
    if settings.port == 0 or settings.port in _serving:
        return
    start_http_server(settings.port, addr=settings.host)
    _serving.add(settings.port)
    logger.info("metrics on %s:%d/metrics", settings.host, settings.port)


def _serve_here() -> None:
    global _started_in
    if _wanted is None or _started_in == os.getpid():
        return
    _started_in = os.getpid()
    try:
        start(_wanted)
    except OSError as exc:  # a second worker of one pod: the first one serves
        logger.warning("metrics port %d not served here: %s", _wanted.port, exc)
