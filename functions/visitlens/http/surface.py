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
    from visitlens.persons.routes import ERASE_ROUTES, MERGE_ROUTES
    from visitlens.reports.aggregate import ROUTES as AGGREGATE
    from visitlens.staff.routes import ROUTES as STAFF

    return [*API, *MATCH, *STAFF, *MERGE_ROUTES, *ERASE_ROUTES, *AGGREGATE]


@functools.cache
def openapi_document() -> dict[str, Any]:
    return openapi.build(all_routes(), "visitlens API", __version__)
