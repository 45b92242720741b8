"""The `ingest` function: a face.detected CloudEvent in, a visit.recorded CloudEvent out.

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("ingest")


@functions_framework.aio.http
async def ingest(request: Request) -> Response:
    return await handler(request)
