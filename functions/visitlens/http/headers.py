"""Security headers on every response a function sends (OWASP Secure Headers: an API's set)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]

API_HEADERS = {
    "x-content-type-options": "nosniff",  # a JSON error is never sniffed into HTML
    "referrer-policy": "no-referrer",
    # a response says whether it may be cached (the JWK Set, snapshots); the rest never is:
    # tokens (RFC 6749 §5.1 asks no-store of the token endpoint), people, counts
    "cache-control": "no-store",
}
HSTS = "max-age=63072000; includeSubDomains"
"""Two years, as hstspreload.org asks; sent only on a request that arrived over TLS."""


def over_tls(request: Request) -> bool:
    """Served over TLS: directly, or terminated at the ingress in front (its X-Forwarded-Proto).
    A forged header can only add HSTS to a plain-HTTP answer, which browsers ignore there."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def secured(handler: Handler) -> Handler:
    """``handler`` with :data:`API_HEADERS` on each response (where it did not set its own) and
    HSTS over TLS."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        response = await handler(request)
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)
        if over_tls(request):
            response.headers.setdefault("strict-transport-security", HSTS)
        return response

    return run
