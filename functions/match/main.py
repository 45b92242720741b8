"""The `match` function: who is this? Top-K persons of the tenant's gallery for an image or embedding."""

from __future__ import annotations

from collections.abc import Mapping

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens.auth.service import AuthService
from visitlens.config import load_settings
from visitlens.http import health
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router
from visitlens.identity.match_routes import ROUTES, MatchServices, lazy_match_services
from visitlens.logs import configure
from visitlens.metrics import observed, serve

settings = load_settings()
configure(settings.log_level, settings.log_format)
serve(settings.metrics)
services = lazy_match_services(settings)


def _authenticator(s: MatchServices) -> AuthService:
    return s.auth


router: Router[MatchServices] = Router(
    ROUTES,
    services,
    _authenticator,
    settings.http.max_body_bytes,
    RateLimiter(settings.http),
)


async def _checks() -> Mapping[str, health.Check]:
    """The dependencies this function uses (GET /readyz)."""
    s = await services()
    return {"database": health.database(s.db), "gallery": s.matcher.gallery.ping}


@functions_framework.aio.http
@observed("match")
async def match(request: Request) -> Response:
    if (answer := await health.probe(request, _checks)) is not None:
        return answer
    return await router.dispatch(request)
