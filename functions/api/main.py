"""The `api` function: every HTTP route of the UI-facing API, served by functions-framework (aio)."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.api.routes import ROUTES
from visitlens.api.services import ApiServices, lazy_api_services
from visitlens.auth.service import AuthService
from visitlens.config import load_settings
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


@functions_framework.aio.http
@observed("api")
async def api(request: Request) -> Response:
    return await router.dispatch(request)
