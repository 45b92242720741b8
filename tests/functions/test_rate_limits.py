"""Rate limits: a tenant or an API key above its configured rate gets 429 with Retry-After; other
tenants and keys are not affected."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import TenantWorld, make_world
from visitlens.adapters.postgres import Database
from visitlens.api.routes import ROUTES
from visitlens.api.services import ApiServices, lazy_api_services
from visitlens.config import HttpSettings, load_settings
from visitlens.http.ratelimit import RateLimiter
from visitlens.http.router import Router

pytestmark = pytest.mark.integration


def client_with(limits: HttpSettings) -> httpx.AsyncClient:
    settings = load_settings()
    router: Router[ApiServices] = Router(
        ROUTES, lazy_api_services(settings), lambda s: s.auth, 1_000_000, RateLimiter(limits)
    )

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        response: Response = await router.dispatch(Request(scope, receive))
        await response(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


async def test_api_key_and_tenant_limits(
    function_environment: None, world: TenantWorld, db: Database, api_client: httpx.AsyncClient
) -> None:
    other = await make_world(db, api_client)
    limits = HttpSettings(
        rate_limit_api_key="3/minute",
        rate_limit_tenant="100/minute",
        rate_limit_tenants={other.tenant_id: "2/minute"},
    )
    async with client_with(limits) as client:
        codes = [
            (await client.get("/v1/auth/me", headers=world.auth(world.worker_a))).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        limited = await client.get("/v1/auth/me", headers=world.auth(world.worker_a))
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "API key" in limited.json()["detail"]
        # the tenant's users are not limited by the key's rate
        assert (await client.get("/v1/auth/me", headers=world.auth(world.admin))).status_code == 200
        # a tenant with its own, lower rate
        first = [
            (await client.get("/v1/auth/me", headers=other.auth(other.admin))).status_code
            for _ in range(3)
        ]
        assert first == [200, 200, 429]
        # public routes (the token grant) are not counted against a tenant
        assert (await client.get("/healthz")).status_code == 200
