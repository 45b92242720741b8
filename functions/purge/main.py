"""The `purge` function: the hourly, time-budgeted retention tick (a PingSource tick).

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("purge")


@functions_framework.aio.http
async def purge(request: Request) -> Response:
    return await handler(request)
