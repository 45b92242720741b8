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
from visitlens.metrics import observed, serve
from visitlens.persons.routes import (
    MERGE_ROUTES,
    PersonServices,
    dependency_checks,
    lazy_person_services,
)

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
    return dependency_checks(await services())


@functions_framework.aio.http
@observed("merge")
async def merge(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    return await router.dispatch(request)
