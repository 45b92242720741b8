"""The `api` function: every HTTP route of the UI-facing API, served by functions-framework (aio)."""

from __future__ import annotations

from collections.abc import Mapping

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.api.routes import ROUTES
from visitlens.api.services import ApiServices, lazy_api_services
from visitlens.auth.service import AuthService
from visitlens.config import load_settings
from visitlens.http import health
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.logs import configure
from visitlens.metrics import observed, serve

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
services = lazy_api_services(settings)


def _authenticator(s: ApiServices) -> AuthService:
    return s.auth


router: Router[ApiServices] = Router(
    ROUTES, services, _authenticator, settings.http.max_body_bytes, RateLimiter(settings.http)
)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {
        "database": health.database(s.db),
        "object_store": health.bucket(s.store, s.settings.s3.raw_bucket),
    }


@functions_framework.aio.http
@observed("api")
async def api(request: Request) -> Response:
    if (answer := await health.probe(request, _checks, live=False)) is not None:
        return answer
    return await router.dispatch(request)
