"""The `merge` function: merge, unmerge and not-same-person marks (tenant admins, audited).

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("merge")


@functions_framework.aio.http
async def merge(request: Request) -> Response:
    return await handler(request)
