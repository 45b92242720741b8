"""The `enroll-staff` function: staff photos in (HTTP multipart or a MinIO bucket notification),
one usable face each, embeddings into the tenant's gallery; per-site staff galleries out.

A thin entry point: `visitlens.wiring` composes the handler from the settings.
"""

from __future__ import annotations

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from visitlens import wiring

handler = wiring.function("enroll-staff")


@functions_framework.aio.http
async def enroll_staff(request: Request) -> Response:
    return await handler(request)
