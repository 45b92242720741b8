"""The `aggregate` function: hourly visit statistics from visit.recorded events, a cron tick and
an admin route (any range), all one idempotent re-materialisation.

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("aggregate")


@functions_framework.aio.http
async def aggregate(request: Request) -> Response:
    return await handler(request)
