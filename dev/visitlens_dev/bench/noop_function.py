"""A functions-framework function that answers at once: the yardstick the ingest bench divides by
(what the framework, the ASGI server and HTTP cost on this machine with nothing else to do)."""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse


@functions_framework.aio.http
async def noop(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"ok": True})
