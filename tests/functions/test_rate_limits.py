"""Rate limits: a tenant or an API key above its configured rate gets 429 with Retry-After; other
tenants and keys are not affected."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import TenantWorld, make_world
from visitlens import wiring
from visitlens.adapters.postgres import Database
from visitlens.adapters.ratelimit import LoginLimiter, RateLimiter
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.config import HttpSettings, load_settings
from visitlens.errors import RateLimited
from visitlens.http.api.services import ApiServices
from visitlens.http.router import Router
from visitlens.http.routes.api import ROUTES
from visitlens.lazy import Lazy
from visitlens_dev.stack.processes import free_port, tcp_open, wait_until

pytestmark = pytest.mark.integration


def client_with(limits: HttpSettings) -> httpx.AsyncClient:
    settings = load_settings()
    router: Router[ApiServices] = Router(
        ROUTES,
        Lazy(lambda: wiring.api_services(settings)),
        lambda s: s.auth,
        1_000_000,
        RateLimiter(limits),
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


def api_with(**http: object) -> httpx.AsyncClient:
    """The api function's router on settings with these HTTP limits (one warm instance)."""
    settings = load_settings(http=http)
    router: Router[ApiServices] = Router(
        ROUTES,
        Lazy(lambda: wiring.api_services(settings)),
        lambda s: s.auth,
        1_000_000,
        RateLimiter(settings.http),
    )

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        response: Response = await router.dispatch(Request(scope, receive))
        await response(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test")


def wrong_login(email: str) -> dict[str, str]:
    return {"grant_type": "password", "email": email, "password": "not-the-password-at-all"}


async def test_password_guessing_is_limited_per_account_and_per_address(
    function_environment: None, world: TenantWorld
) -> None:
    email = f"admin-{world.tenant_id}@example.com"
    async with api_with(
        rate_limit_login_account="5/minute", rate_limit_login_address="8/minute"
    ) as client:
        codes = []
        for i in range(8):  # one account from eight addresses: the account's limit holds
            response = await client.post(
                "/v1/auth/token",
                json=wrong_login(email),
                headers={"x-forwarded-for": f"203.0.113.{i}"},
            )
            codes.append(response.status_code)
        assert codes == [401] * 5 + [429] * 3
        assert 1 <= int(response.headers["retry-after"]) <= 60
        # one address trying many accounts: the address's limit holds
        codes = []
        for i in range(10):
            response = await client.post(
                "/v1/auth/token",
                json=wrong_login(f"nobody-{i}@example.com"),
                headers={"x-forwarded-for": "198.51.100.7"},
            )
            codes.append(response.status_code)
        assert codes == [401] * 8 + [429] * 2
        # a forged X-Forwarded-For from an untrusted peer is not believed: the peer counts
        assert LoginLimiter(HttpSettings()).client_address("192.0.2.1", "10.0.0.1") == "192.0.2.1"


async def test_password_hashing_does_not_block_the_event_loop(
    function_environment: None, world: TenantWorld
) -> None:
    """Twelve concurrent wrong passwords (argon2 each): a cheap request sent after them all is
    answered before the last of them, so the hashing runs beside the loop, not on it."""
    email = f"admin-{world.tenant_id}@example.com"
    async with api_with(
        rate_limit_login_account="1000/minute", rate_limit_login_address="1000/minute"
    ) as client:
        await client.get("/.well-known/jwks.json")  # warm
        order: list[str] = []

        async def login(i: int) -> None:
            await client.post("/v1/auth/token", json=wrong_login(email))
            order.append(f"login-{i}")

        async def cheap() -> None:
            await asyncio.sleep(0.01)
            assert (await client.get("/.well-known/jwks.json")).status_code == 200
            order.append("cheap")

        await asyncio.gather(*(login(i) for i in range(12)), cheap())
        assert order.index("cheap") < len(order) - 1, order


async def test_a_login_burst_leaves_readiness_and_other_routes_alone(
    api_client: httpx.AsyncClient,
) -> None:
    """The probe's burst: 48 concurrent wrong passwords for unknown e-mails (below the
    per-address limit). The api's own ``/readyz`` (whose object-store check runs in the default
    executor) stays 200 throughout and a cheap route stays fast: the hashes wait for their
    permits as coroutines, on a pool of their own. (Timed in ``make bench``; loose here.)"""
    await api_client.get("/readyz")  # warm: services composed, clients connected
    done = asyncio.Event()
    ready: list[int] = []
    cheap: list[float] = []

    async def login(i: int) -> int:
        body = wrong_login(f"nobody-{i}-{uuid.uuid4().hex[:6]}@example.com")
        return (await api_client.post("/v1/auth/token", json=body)).status_code

    async def poll() -> None:
        while not done.is_set():
            ready.append((await api_client.get("/readyz")).status_code)
            started = time.perf_counter()
            assert (await api_client.get("/.well-known/jwks.json")).status_code == 200
            cheap.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    statuses = await asyncio.gather(*(login(i) for i in range(48)))
    done.set()
    await poller
    assert statuses == [401] * 48
    assert ready and set(ready) == {200}, ready
    assert statistics.quantiles(cheap, n=20)[-1] < 1.0, sorted(cheap)[-5:]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server (Debian's redis-server) on a free loopback port, stopped afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (make system-deps installs Debian's redis-server)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until("redis", lambda: tcp_open("127.0.0.1", port), timeout_s=20, pid=proc.pid)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


async def test_counters_in_redis_are_shared_by_every_replica(
    redis_url: str, world: TenantWorld
) -> None:
    """Two instances (two replicas of a function) share one tenant limit through Redis: the
    tenant gets its rate once, not once per replica."""
    settings = HttpSettings(
        rate_limit_storage=redis_url,
        rate_limit_tenant="4/minute",
        rate_limit_api_key=None,
        rate_limit_tenants={},
    )
    replicas = [RateLimiter(settings), RateLimiter(settings)]
    principal = Principal(uuid.uuid4(), PrincipalKind.USER, Role.TENANT_ADMIN, uuid.uuid4())
    outcomes = []
    for i in range(6):
        try:
            await replicas[i % 2].check(principal)
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("429")
    assert outcomes == ["ok"] * 4 + ["429"] * 2
    memory = [RateLimiter(HttpSettings(rate_limit_tenant="4/minute")) for _ in range(2)]
    for limiter in memory:  # the per-instance default: each replica counts on its own
        for _ in range(4):
            await limiter.check(principal)


async def test_unreachable_shared_counters_are_counted_per_instance_never_a_500() -> None:
    """The probe: with Redis down every rate-limited request would have been a 500. The counters
    fall back to this instance's memory (a limit still holds), and readiness reports it as
    degraded while the function stays ready."""
    from limits import parse

    from visitlens.adapters.ratelimit import Counters
    from visitlens.http import health

    counters = Counters(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    started = time.perf_counter()
    for _ in range(2):
        await counters.hit(parse("2/minute"), "login_address", "192.0.2.7", "this address")
    with pytest.raises(RateLimited):
        await counters.hit(parse("2/minute"), "login_address", "192.0.2.7", "this address")
    assert time.perf_counter() - started < 5  # a connection refused is answered at once
    assert not await counters.shared_reachable()

    async def checks() -> dict[str, health.Check]:
        return {"rate_limits": health.advisory(counters.shared_reachable, "counted per instance")}

    ready = await health.readiness(checks)
    assert ready.status_code == 200
    assert b'"rate_limits":"degraded (counted per instance)"' in bytes(ready.body)
