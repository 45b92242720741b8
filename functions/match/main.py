"""The `match` function: who is this? Top-K persons of the tenant's gallery for an image or embedding."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.auth.service import AuthService
from visitlens.config import load_settings
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.identity.match_routes import ROUTES, MatchServices, lazy_match_services
from visitlens.logs import configure
from visitlens.metrics import observed, serve

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)


def _authenticator(s: MatchServices) -> AuthService:
    return s.auth


router: Router[MatchServices] = Router(
    ROUTES,
    lazy_match_services(settings),
    _authenticator,
    settings.http.max_body_bytes,
    RateLimiter(settings.http),
)


@functions_framework.aio.http
@observed("match")
async def match(request: Request) -> Response:
    return await router.dispatch(request)
