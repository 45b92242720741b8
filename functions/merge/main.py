"""The `merge` function: merge, unmerge and not-same-person marks (tenant admins, audited)."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.config import load_settings
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.logs import configure
from visitlens.metrics import observed, serve
from visitlens.persons.routes import MERGE_ROUTES, PersonServices, lazy_person_services

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
router: Router[PersonServices] = Router(
    MERGE_ROUTES,
    lazy_person_services(settings),
    lambda s: s.auth,
    settings.http.max_body_bytes,
    RateLimiter(settings.http),
)


@functions_framework.aio.http
@observed("merge")
async def merge(request: Request) -> Response:
    return await router.dispatch(request)
