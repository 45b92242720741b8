"""The `api` function: every HTTP route of the UI-facing API, served by functions-framework (aio).

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("api")


@functions_framework.aio.http
async def api(request: Request) -> Response:
    return await handler(request)
