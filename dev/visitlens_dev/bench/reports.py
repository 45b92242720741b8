"""Report queries on one year of generated visits: 2 tenants x 10 sites (20 sites, five time
zones), VISITLENS_BENCH_VISITS visits in all (default 5,000,000), through the real `api` function
in process (auth, RLS, JSON). Measures the bulk load, the year's re-materialisation, and p50/p95 of
the day/week/month series and the heatmap, for one site and for all sites of a tenant."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from visitlens.adapters.endpoints import database_dsns, resolve
from visitlens.config import Settings
from visitlens.wiring import create_system_admin
from visitlens_dev.bench.report import percentiles, time_async
from visitlens_dev.runtime.spec import FUNCTIONS_DIR

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Australia/Sydney"]
YEAR_START = date(2025, 1, 1)
RUNS = 60
PASSWORD = "benchmark-password-123"  # noqa: S105 - a throw-away account

# Visits across the year: opening hours weighted to the afternoon, more on Saturdays; dwell
# 1-60 minutes; returning customers drawn from a pool (about one new visit in three).
GENERATE = """
INSERT INTO visits (tenant_id, site_id, customer_id, started_at, ended_at, is_new)
SELECT $1, ($2::uuid[])[1 + (g % array_length($2::uuid[], 1))],
       ($3::uuid[])[1 + floor(random() * array_length($3::uuid[], 1))::int],
       t, t + make_interval(secs => 60 + floor(random() * 3540)), random() < 0.33
FROM generate_series(1, $4) g,
     LATERAL (SELECT $5::timestamptz + make_interval(days => floor(random() * 365)::int,
              hours => 8 + floor(power(random(), 0.7) * 12)::int,
              mins => floor(random() * 60)::int) AS t) x
"""


async def _load(owner_dsn: str, tenants: list[dict[str, Any]], visits: int) -> float:
    """Bulk load as the table owner, the monitor's trigger off for the load; seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(owner_dsn)
    try:
        for tenant in tenants:
            async with conn.transaction():
                await conn.execute("ALTER TABLE visits DISABLE TRIGGER visits_notify")
                await conn.execute("SELECT set_config('app.tenant_id', $1, true)", tenant["id"])
                people = max(1000, visits // len(tenants) // 6)
                customers = await conn.fetch(
                    "INSERT INTO customers (tenant_id, first_seen_at, last_seen_at, gender) "
                    "SELECT $1, $2, $2, (ARRAY['female','male',NULL])[1 + g % 3] "
                    "FROM generate_series(1, $3) g RETURNING id",
                    uuid.UUID(tenant["id"]), YEAR_START, people,
                )  # fmt: skip
                ids = [r["id"] for r in customers]
                await conn.execute(
                    GENERATE, uuid.UUID(tenant["id"]), [uuid.UUID(s) for s in tenant["sites"]],
                    ids, visits // len(tenants), YEAR_START,
                )  # fmt: skip
                await conn.execute("ALTER TABLE visits ENABLE TRIGGER visits_notify")
        await conn.execute("ANALYZE visits")
        await conn.execute("ANALYZE customers")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def run(settings: Settings) -> dict[str, Any]:
    from functions_framework.aio import create_asgi_app

    total = int(os.environ.get("VISITLENS_BENCH_VISITS", "5000000"))
    endpoints = resolve(settings)
    os.environ.update(endpoints.environment())
    os.environ["VISITLENS_DATA_DIR"] = str(settings.data_dir)
    os.environ["VISITLENS_ENV"] = settings.env.value
    os.environ["VISITLENS_HTTP__RATE_LIMIT_TENANT"] = "1000000/minute"
    api = create_asgi_app(target="api", source=str(Path(FUNCTIONS_DIR) / "api" / "main.py"))  # type: ignore[no-untyped-call]
    aggregate = create_asgi_app(  # type: ignore[no-untyped-call]
        target="aggregate", source=str(Path(FUNCTIONS_DIR) / "aggregate" / "main.py")
    )
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    await create_system_admin(settings, email, PASSWORD)
    rng = random.Random(7)  # noqa: S311 - sampling query windows, not secrets
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://b") as http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=aggregate), base_url="http://a", timeout=3600
        ) as agg,
    ):
        login = {"grant_type": "password", "email": email, "password": PASSWORD}
        root = {
            "authorization": f"Bearer {(await http.post('/v1/auth/token', json=login)).json()['access_token']}"
        }
        tenants = []
        for n in range(2):
            tenant = (await http.post("/v1/tenants", headers=root,
                                      json={"slug": f"rb-{uuid.uuid4().hex[:8]}", "name": f"t{n}"})).json()  # fmt: skip
            sites = []
            for i in range(10):
                site = (await http.post(f"/v1/tenants/{tenant['id']}/sites", headers=root,
                                        json={"name": f"s{i}", "timezone": ZONES[i % len(ZONES)]})).json()  # fmt: skip
                sites.append(site["id"])
            tenants.append({"id": tenant["id"], "sites": sites})
        owner_dsn, _ = database_dsns(settings)
        load_s = await _load(owner_dsn, tenants, total)

        started = time.perf_counter()
        for tenant in tenants:  # the admin route: one year, idempotent
            body = {"start": f"{YEAR_START.isoformat()}T00:00:00Z",
                    "end": f"{(YEAR_START + timedelta(days=366)).isoformat()}T00:00:00Z"}  # fmt: skip
            response = await agg.post(f"/v1/aggregate/{tenant['id']}/rematerialise",
                                      headers=root, json=body)  # fmt: skip
            assert response.status_code == 200, response.text
        materialise_s = time.perf_counter() - started

        tenant = tenants[0]
        base = f"/v1/tenants/{tenant['id']}/reports"

        def window(days: int) -> dict[str, str]:
            start = YEAR_START + timedelta(days=rng.randrange(0, 365 - days + 1))
            return {
                "start": start.isoformat(),
                "end": (start + timedelta(days=days - 1)).isoformat(),
            }

        def call(path: str, params: dict[str, str], one_site: bool) -> Any:
            async def go() -> None:
                query = dict(params)
                if one_site:
                    query["site_id"] = rng.choice(tenant["sites"])
                response = await http.get(path, headers=root, params=query)
                assert response.status_code == 200, response.text

            return go

        cases: dict[str, tuple[str, Callable[[], dict[str, str]]]] = {
            "day_series_31d": (f"{base}/visits", lambda: {**window(31), "granularity": "day"}),
            "week_series_91d": (f"{base}/visits", lambda: {**window(91), "granularity": "week"}),
            "month_series_365d": (
                f"{base}/visits",
                lambda: {**window(365), "granularity": "month"},
            ),
            "heatmap_365d": (f"{base}/heatmap", lambda: window(365)),
            "heatmap_31d": (f"{base}/heatmap", lambda: window(31)),
        }
        results: dict[str, Any] = {}
        for name, (path, params) in cases.items():
            for scope in ("one_site", "all_sites"):
                samples = []
                for _ in range(RUNS):
                    samples += await time_async(
                        call(path, params(), scope == "one_site"), 1, warmup=0
                    )
                results[f"{name}_{scope}"] = percentiles(samples)
    async with asyncpg.create_pool(owner_dsn, min_size=1, max_size=1) as pool:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.system_admin', 'on', true)")
                size = await conn.fetchval(
                    "SELECT pg_size_pretty(pg_total_relation_size('visits'))"
                )
    worst = max(v["p95_ms"] for v in results.values())
    return {
        "visits": total,
        "tenants": 2,
        "sites": 20,
        "bulk_load_s": round(load_s, 1),
        "rematerialise_year_s": round(materialise_s, 1),
        "visits_table": size,
        "queries": results,
        "worst_p95_ms": worst,
        "target_p95_ms": 50,
        "target_met": worst < 50,
        "seed_target_p95_ms": 200,
        "seed_target_met": worst < 200,
    }
