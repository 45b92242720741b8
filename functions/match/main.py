"""The `match` function: who is this? Top-K persons of the tenant's gallery for an image or embedding.

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("match")


@functions_framework.aio.http
async def match(request: Request) -> Response:
    return await handler(request)
