"""The `enroll-staff` function: staff photos in (HTTP multipart or a MinIO bucket notification),
one usable face each, embeddings into the tenant's gallery; per-site staff galleries out."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.event_tokens import EventTokenVerifier, function_audience
from visitlens.auth.service import AuthService
from visitlens.config import load_settings
from visitlens.contracts import MINIO_TYPE_PREFIX
from visitlens.errors import InvalidInput, VisitlensError
from visitlens.http import health
from visitlens.http.cloudevents import is_delivery, read_event, rejection
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.logs import configure
from visitlens.metrics import note_route, observed, serve
from visitlens.staff.enrollment import parse_drop_key
from visitlens.staff.routes import ROUTES, StaffServices, lazy_staff_services

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
deliveries = EventTokenVerifier(settings.events, function_audience("enroll-staff"))
logger = logging.getLogger("visitlens.enroll_staff")
services = lazy_staff_services(settings)
NOTIFICATION_LIMIT = 64 * 1024


def _authenticator(s: StaffServices) -> AuthService:
    return s.auth


router: Router[StaffServices] = Router(
    ROUTES, services, _authenticator, settings.http.max_body_bytes, RateLimiter(settings.http)
)


async def _bucket_event(request: Request) -> Response:
    """A MinIO record (as the gateway or a Knative source delivers it) for ``staff-faces/``."""
    event = None
    try:
        deliveries.verify(request.headers.get("authorization"))
        event = await read_event(request, NOTIFICATION_LIMIT)
        kind = str(event["type"])
        if not kind.startswith(MINIO_TYPE_PREFIX):
            raise InvalidInput(f"enroll-staff takes MinIO notifications, not {kind}", field="type")
        record = event.data if isinstance(event.data, dict) else {}
        key = str(event.get("subject") or "")
        drop = parse_drop_key(key)
        s = await services()
        if ":ObjectRemoved:" in kind:
            removed = await s.enrollment.forget_dropped(drop)
            logger.info("staff photo %s removed from the bucket (known: %s)", drop.key, removed)
            return Response(status_code=204)
        size = record.get("s3", {}).get("object", {}).get("size")
        row = await s.enrollment.enroll_dropped(drop, size if isinstance(size, int) else None)
    except VisitlensError as error:
        return rejection(error, event)
    return JSONResponse({"image_id": str(row["id"]), "staff_id": str(row["staff_id"])}, 201)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {
        "database": health.database(s.db),
        "gallery": s.enrollment.gallery.ping,
        "object_store": s.enrollment.ping_store,
    }


@functions_framework.aio.http
@observed("enroll-staff")
async def enroll_staff(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    if is_delivery(request):
        note_route(request, "/ (bucket events)")
        return await _bucket_event(request)
    return await router.dispatch(request)
