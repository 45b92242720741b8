"""The `merge` function: merge, unmerge and not-same-person marks (tenant admins, audited)."""

from __future__ import annotations

from collections.abc import Mapping

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.config import load_settings
from visitlens.http import health
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.logs import configure
from visitlens.metrics import note_route, observed, serve
from visitlens.persons.routes import MERGE_ROUTES, PersonServices, lazy_person_services

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
services = lazy_person_services(settings)
router: Router[PersonServices] = Router(
    MERGE_ROUTES,
    services,
    lambda s: s.auth,
    settings.http.max_body_bytes,
    RateLimiter(settings.http),
)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {
        "database": health.database(s.db),
        "gallery": s.merger.gallery.ping,
        "object_store": health.bucket(s.store, s.raw_bucket),
    }


@functions_framework.aio.http
@observed("merge")
async def merge(request: Request) -> Response:
    if request.url.path == health.READY_PATH:
        note_route(request, health.READY_PATH)
        return await health.readiness(_checks)
    if request.url.path == health.LIVE_PATH:
        note_route(request, health.LIVE_PATH)
        return health.liveness()
    return await router.dispatch(request)
