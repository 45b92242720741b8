"""The HTTP API on the embedded stack, in process through functions-framework's ASGI app:
password grant (argon2id), API-key grant, bearer verification + an RLS-scoped list, and a write."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from visitlens.adapters.endpoints import resolve
from visitlens.config import Settings
from visitlens.wiring import create_system_admin
from visitlens_dev.bench.report import percentiles, time_async
from visitlens_dev.runtime.spec import FUNCTIONS_DIR

RUNS = 200
PASSWORD = "benchmark-password-123"  # noqa: S105 - a throw-away account


async def run(settings: Settings) -> dict[str, Any]:
    from functions_framework.aio import create_asgi_app

    endpoints = resolve(settings)
    os.environ.update(endpoints.environment())
    os.environ["VISITLENS_DATA_DIR"] = str(settings.data_dir)
    os.environ["VISITLENS_ENV"] = settings.env.value
    # hundreds of grants from one address and account in a minute: the login limits (tested on
    # their own in test_rate_limits) would answer 429 and time the limiter, not the hashing
    os.environ["VISITLENS_HTTP__RATE_LIMIT_LOGIN_ACCOUNT"] = "100000/minute"
    os.environ["VISITLENS_HTTP__RATE_LIMIT_LOGIN_ADDRESS"] = "100000/minute"
    source = str(Path(FUNCTIONS_DIR) / "api" / "main.py")
    app = create_asgi_app(target="api", source=source)  # type: ignore[no-untyped-call]
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await create_system_admin(settings, email, PASSWORD)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        login = {"grant_type": "password", "email": email, "password": PASSWORD}
        token = (await http.post("/v1/auth/token", json=login)).json()["access_token"]
        h = {"authorization": f"Bearer {token}"}
        tenant = (
            await http.post(
                "/v1/tenants", headers=h, json={"slug": f"b-{uuid.uuid4().hex[:8]}", "name": "b"}
            )
        ).json()
        t = f"/v1/tenants/{tenant['id']}"
        site = (
            await http.post(f"{t}/sites", headers=h, json={"name": "s", "timezone": "UTC"})
        ).json()
        for i in range(50):
            await http.post(f"{t}/sites/{site['id']}/cameras", headers=h, json={"name": f"c{i}"})
        key = (
            await http.post(
                f"{t}/api-keys", headers=h, json={"name": "k", "site_ids": [site["id"]]}
            )
        ).json()
        counter = iter(range(10**9))

        async def password_grant() -> None:
            assert (await http.post("/v1/auth/token", json=login)).status_code == 200

        async def api_key_grant() -> None:
            body = {"grant_type": "api_key", "api_key": key["api_key"]}
            assert (await http.post("/v1/auth/token", json=body)).status_code == 200

        async def list_cameras() -> None:
            response = await http.get(
                f"{t}/sites/{site['id']}/cameras", headers=h, params={"limit": 50}
            )
            assert response.status_code == 200

        async def create_camera() -> None:
            body = {"name": f"new-{next(counter)}"}
            assert (
                await http.post(f"{t}/sites/{site['id']}/cameras", headers=h, json=body)
            ).status_code == 201

        results = {
            "password_grant": percentiles(await time_async(password_grant, runs=40)),
            "api_key_grant": percentiles(await time_async(api_key_grant, runs=RUNS)),
            "list_50_cameras": percentiles(await time_async(list_cameras, runs=RUNS)),
            "create_camera_audited": percentiles(await time_async(create_camera, runs=RUNS)),
        }
        burst = await login_burst(http, list_cameras)
    return {
        "description": __doc__.strip().replace("\n", " "),
        "timings": results,
        "login_burst": burst,
    }


BURST = 48


async def login_burst(
    http: httpx.AsyncClient, other_route: Callable[[], Awaitable[None]]
) -> dict[str, Any]:
    """The robustness probe's burst: 48 concurrent wrong passwords for unknown e-mails, while
    ``/readyz`` and another route are asked in a loop; targets: readiness 200 throughout, the
    other route's p95 under 200 ms."""
    done = asyncio.Event()
    ready: list[int] = []
    other_ms: list[float] = []

    async def login(i: int) -> int:
        body = {"grant_type": "password", "email": f"nobody-{i}-{uuid.uuid4().hex[:6]}@example.com",
                "password": "not-the-password-at-all"}  # fmt: skip
        return (await http.post("/v1/auth/token", json=body)).status_code

    async def poll() -> None:
        while not done.is_set():
            ready.append((await http.get("/readyz")).status_code)
            started = time.perf_counter()
            await other_route()
            other_ms.append((time.perf_counter() - started) * 1000)

    poller = asyncio.create_task(poll())
    started = time.perf_counter()
    statuses = await asyncio.gather(*(login(i) for i in range(BURST)))
    seconds = time.perf_counter() - started
    done.set()
    await poller
    other = percentiles(other_ms)
    return {
        "logins": BURST,
        "login_statuses": {str(k): statuses.count(k) for k in sorted(set(statuses))},
        "burst_s": round(seconds, 2),
        "readyz_statuses": {str(k): ready.count(k) for k in sorted(set(ready))},
        "readyz_200_throughout": set(ready) == {200},
        "other_route_during_burst": other,
        "other_route_p95_under_200_ms": other["p95_ms"] < 200,
    }
