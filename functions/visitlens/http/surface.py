"""The whole HTTP surface (every HTTP function's routes) as one OpenAPI document."""

from __future__ import annotations

import functools
from typing import Any

from visitlens import __version__
from visitlens.http import openapi
from visitlens.http.router import Route


def all_routes() -> list[Route]:
    from visitlens.api.routes import ROUTES as API
    from visitlens.identity.match_routes import ROUTES as MATCH

    return [*API, *MATCH]


@functools.cache
def openapi_document() -> dict[str, Any]:
    return openapi.build(all_routes(), "visitlens API", __version__)
