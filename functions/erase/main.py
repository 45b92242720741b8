"""The `erase` function: the right to erasure (tenant admins, audited by receipt id).

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("erase")


@functions_framework.aio.http
async def erase(request: Request) -> Response:
    return await handler(request)
