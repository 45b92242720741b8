"""Request rate limits per tenant and per API key (moving window, the `limits` library).

Counters live in ``http.rate_limit_storage``: ``memory://`` keeps them per instance (the embedded
default); ``redis://…`` shares them across every instance of every function.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from visitlens.auth.principal import Principal, PrincipalKind
from visitlens.config import HttpSettings
from visitlens.errors import RateLimited


class RateLimiter:
    def __init__(self, settings: HttpSettings) -> None:
        uri = settings.rate_limit_storage
        storage = storage_from_string(uri if uri.startswith("async+") else f"async+{uri}")
        self._limiter = MovingWindowRateLimiter(storage)
        self._tenant = parse(settings.rate_limit_tenant) if settings.rate_limit_tenant else None
        self._key = parse(settings.rate_limit_api_key) if settings.rate_limit_api_key else None
        self._overrides = {t: parse(v) for t, v in settings.rate_limit_tenants.items()}

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
        if await self._limiter.hit(item, kind, key):
            return
        stats = await self._limiter.get_window_stats(item, kind, key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"{who} is over its rate of {item}; retry in {retry}s", retry)
