"""Readiness: ``GET /readyz`` on every function checks the dependencies that function really uses
(PostgreSQL, Milvus, the object store), each with a short timeout, and answers 503 naming the ones
that failed — by name and exception class only, never a message that could carry a DSN. Liveness
(``GET /healthz``) says only that the process serves: a dependency's outage must not restart pods."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from visitlens.adapters.metrics import note_route
from visitlens.ports import ObjectStore, Transactions

logger = logging.getLogger(__name__)
READY_PATH = "/readyz"
LIVE_PATH = "/healthz"
Check = Callable[[], Awaitable[None]]


class Degraded(Exception):
    """Raised by the check of a dependency the function can do without for a while (the shared
    rate-limit counters): reported as "degraded (…)", and the function stays ready."""


def advisory(reachable: Callable[[], Awaitable[bool]], meanwhile: str) -> Check:
    """A check that reports ``meanwhile`` (what the function does instead) while ``reachable``
    says no, without taking the function out of service."""

    async def check() -> None:
        if not await reachable():
            raise Degraded(meanwhile)

    return check


def database(db: Transactions) -> Check:
    async def check() -> None:
        await db.fetchval_unscoped("SELECT 1")

    return check


def bucket(store: ObjectStore, name: str) -> Check:
    async def check() -> None:
        if not await store.bucket_exists(name):
            raise LookupError(name)

    return check


async def readiness(
    checks_of: Callable[[], Awaitable[Mapping[str, Check]]], timeout_s: float = 3.0
) -> JSONResponse:
    """``checks_of`` builds the function's clients first (a failure there is "not ready" too)."""
    results: dict[str, str] = {}
    try:
        checks = await asyncio.wait_for(checks_of(), timeout_s * 3)
    except Exception as exc:  # the clients could not even be built
        checks = {}
        results["services"] = f"failed ({type(exc).__name__})"
        logger.warning("readiness: services failed (%s)", type(exc).__name__)
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout_s)
            results[name] = "ok"
        except Degraded as degraded:
            results[name] = f"degraded ({degraded})"
            logger.warning("readiness: %s degraded (%s)", name, degraded)
        except Exception as exc:  # any failure is "not ready"; the class says which kind
            results[name] = f"failed ({type(exc).__name__})"
            logger.warning("readiness: %s failed (%s)", name, type(exc).__name__)
    ready = all(v == "ok" or v.startswith("degraded") for v in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": results},
        status_code=200 if ready else 503,
        headers={"cache-control": "no-store"},
    )


async def probe(
    request: Request, checks_of: Callable[[], Awaitable[Mapping[str, Check]]], *, live: bool = True
) -> Response | None:
    """The answer to a probe (``/readyz``; ``/healthz`` too unless the function's router has it),
    or None for any other request."""
    path = request.url.path
    if path == READY_PATH:
        note_route(request, READY_PATH)
        return await readiness(checks_of)
    if live and path == LIVE_PATH:
        note_route(request, LIVE_PATH)
        return liveness()
    return None


def liveness() -> JSONResponse:
    """The process serves (no dependency is asked: a database outage must not restart pods)."""
    from visitlens import __version__

    return JSONResponse(
        {"status": "ok", "version": __version__}, headers={"cache-control": "no-store"}
    )
