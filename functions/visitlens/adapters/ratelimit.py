"""Request rate limits per tenant and per API key (moving window, the `limits` library).

Counters live in ``http.rate_limit_storage``: ``memory://`` keeps them per instance (the embedded
default); ``redis://…`` shares them across every instance of every function.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from visitlens.auth.principal import Principal, PrincipalKind
from visitlens.config import HttpSettings
from visitlens.errors import RateLimited

logger = logging.getLogger(__name__)


SHARED_TIMEOUT_S = 0.5
"""How long a request waits for the shared counters before counting in this instance instead."""
WARN_EVERY_S = 60.0


def _storage(uri: str) -> Any:
    """Async counters: in memory, or in Redis through redis-py (shared by every replica); a
    storage failure raises :class:`limits.errors.StorageError`, whatever the driver."""
    uri = uri if uri.startswith("async+") else f"async+{uri}"
    if uri.startswith(("async+redis://", "async+rediss://")):
        return storage_from_string(
            uri, implementation="redispy", wrap_exceptions=True,
            socket_timeout=SHARED_TIMEOUT_S, socket_connect_timeout=SHARED_TIMEOUT_S,
        )  # fmt: skip
    return storage_from_string(uri, wrap_exceptions=True)


class Counters:
    """Moving-window counters in the configured storage. While a shared storage (Redis) cannot
    be reached, requests are counted in this instance's memory instead — each replica then
    limits alone (looser by the number of replicas, never unlimited), with a warning a minute —
    and never fail for it: a rate limit must not turn a Redis outage into a service outage."""

    def __init__(self, uri: str) -> None:
        self._storage = _storage(uri)
        self._shared = MovingWindowRateLimiter(self._storage)
        self._local = MovingWindowRateLimiter(storage_from_string("async+memory://"))
        self._warned = 0.0

    async def hit(self, item: RateLimitItem, kind: str, key: str, who: str) -> None:
        """Count one request of ``key``; 429 with the seconds to wait when over ``item``."""
        try:
            await hit(self._shared, item, kind, key, who)
        except StorageError as exc:
            now = time.monotonic()
            if now - self._warned >= WARN_EVERY_S:
                self._warned = now
                logger.warning(
                    "rate-limit storage unreachable (%s): counting in this instance meanwhile",
                    type(exc.storage_error).__name__,
                )
            await hit(self._local, item, kind, key, who)

    async def shared_reachable(self) -> bool:
        """Whether the shared counters answer (the readiness report's "degraded" otherwise)."""
        try:
            return bool(await self._storage.check())
        except StorageError:
            return False


class RateLimiter:
    def __init__(self, settings: HttpSettings) -> None:
        self.counters = Counters(settings.rate_limit_storage)
        self._tenant = _rate("rate_limit_tenant", settings.rate_limit_tenant)
        self._key = _rate("rate_limit_api_key", settings.rate_limit_api_key)
        self._overrides = {
            t: _required_rate("rate_limit_tenants", v)
            for t, v in settings.rate_limit_tenants.items()
        }

    async def check(self, principal: Principal) -> None:
        """Count this request; 429 (with the seconds to wait) when a limit is exceeded."""
        if principal.tenant_id is not None:
            tenant = str(principal.tenant_id)
            item = self._overrides.get(tenant, self._tenant)
            if item is not None:
                await self._hit(item, "tenant", tenant, "this tenant")
        if principal.kind is PrincipalKind.API_KEY and self._key is not None:
            await self._hit(self._key, "api_key", str(principal.subject), "this API key")

    async def _hit(self, item: RateLimitItem, kind: str, key: str, who: str) -> None:
        await self.counters.hit(item, kind, key, who)


async def hit(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, kind: str, key: str, who: str
) -> None:
    """Count one request of ``key``; 429 with the seconds to wait when over ``item``."""
    if await limiter.hit(item, kind, key):
        return
    stats = await limiter.get_window_stats(item, kind, key)
    retry = max(1, math.ceil(stats.reset_time - time.time()))
    raise RateLimited(f"{who} is over its rate of {item}; retry in {retry}s", retry)


class LoginLimiter:
    """Token grants per account and per client address: password guessing gets 429 with
    Retry-After long before it gets anywhere, and one address cannot flood the password hasher."""

    def __init__(self, settings: HttpSettings) -> None:
        self.counters = Counters(settings.rate_limit_storage)
        self._account = _required_rate(
            "rate_limit_login_account", settings.rate_limit_login_account
        )
        self._address = _required_rate(
            "rate_limit_login_address", settings.rate_limit_login_address
        )
        self._trusted = frozenset(settings.trusted_proxies)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The caller's address: the peer, or behind a trusted proxy the last address that proxy
        chain did not add itself (X-Forwarded-For is otherwise the client's to forge)."""
        address = peer or "unknown"
        if address in self._trusted and forwarded_for:
            hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
            while hops and hops[-1] in self._trusted:
                hops.pop()
            if hops:
                address = hops[-1]
        return address

    async def check(self, address: str, account: str | None) -> None:
        await self.counters.hit(self._address, "login_address", address, "this address")
        if account is not None:
            await self.counters.hit(self._account, "login_account", account.lower(), "this account")


def _rate(setting: str, value: str | None) -> RateLimitItem | None:
    """A limit like ``600/minute`` (the limits library's notation); a clear error at start-up
    naming the setting otherwise."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"VISITLENS_HTTP__{setting.upper()}: {exc}") from exc


def _required_rate(setting: str, value: str) -> RateLimitItem:
    rate = _rate(setting, value)
    assert rate is not None
    return rate
