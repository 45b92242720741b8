"""The route table of an HTTP function: matching, authentication, role checks, error mapping.

A functions-framework HTTP function receives every path; this dispatches it. Routes are plain data,
so the same table produces the OpenAPI document.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path

from visitlens.adapters.metrics import ROUTE_KEY
from visitlens.auth.principal import Principal, Role
from visitlens.errors import (
    MethodNotAllowed,
    NotFound,
    Unauthenticated,
    VisitlensError,
)
from visitlens.http.body import parse_json_body, parse_query
from visitlens.http.problems import problem_response

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
S = TypeVar("S")


class RequestLimiter(Protocol):
    """Counts an authenticated caller's request; RateLimited (429) past its limits."""

    async def check(self, principal: Principal) -> None: ...


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Principal: ...


@dataclass(slots=True)
class Ctx(Generic[S]):
    """One request as a handler sees it: path params, the verified principal, the services."""

    request: Request
    params: dict[str, Any]
    principal_or_none: Principal | None
    services: S
    body_limit: int

    @property
    def principal(self) -> Principal:
        if self.principal_or_none is None:
            raise Unauthenticated("missing bearer token")
        return self.principal_or_none

    async def body(self, model: type[M]) -> M:
        return await parse_json_body(self.request, model, self.body_limit)

    def query(self, model: type[M]) -> M:
        return parse_query(dict(self.request.query_params), model)


Handler = Callable[[Ctx[Any]], Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    roles: tuple[Role, ...] = ()
    public: bool = False
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    regex: Any = field(default=None, compare=False)
    convertors: dict[str, Convertor[Any]] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, method: str, path: str, handler: Handler, **kwargs: Any) -> Route:
        regex, _, convertors = compile_path(path)
        return cls(method.upper(), path, handler, regex=regex, convertors=convertors, **kwargs)


class Router(Generic[S]):
    def __init__(
        self,
        routes: Sequence[Route],
        services: Callable[[], Awaitable[S]],
        authenticator: Callable[[S], Authenticator],
        body_limit: int,
        limiter: RequestLimiter | None = None,
    ) -> None:
        self.routes = list(routes)
        self._services = services
        self._authenticator = authenticator
        self._body_limit = body_limit
        self._limiter = limiter

    def match(self, method: str, path: str) -> tuple[Route, dict[str, Any]]:
        allowed: list[str] = []
        for route in self.routes:
            found = route.regex.match(path)
            if not found:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            params = {
                name: route.convertors[name].convert(value)
                for name, value in found.groupdict().items()
            }
            return route, params
        if allowed:
            raise MethodNotAllowed(f"{method} not allowed here; allowed: {', '.join(allowed)}")
        raise NotFound(f"no route for {path}")

    async def dispatch(self, request: Request) -> Response:
        try:
            route, params = self.match(request.method, request.url.path)
            request.scope[ROUTE_KEY] = route.path
            services = await self._services()
            principal = None
            if not route.public:
                authorization = request.headers.get("authorization")
                principal = await self._authenticator(services).authenticate(authorization)
                if self._limiter is not None:
                    await self._limiter.check(principal)
                if route.roles:
                    principal.require_role(*route.roles)
            ctx = Ctx(request, params, principal, services, self._body_limit)
            result = await route.handler(ctx)
        except MethodNotAllowed as exc:
            allow = sorted({r.method for r in self.routes if r.regex.match(request.url.path)})
            return problem_response(exc, {"Allow": ", ".join(allow)})
        except VisitlensError as exc:
            if exc.status >= 500:
                # the message is the client's problem detail: ids and causes, never secrets
                logger.error(
                    "%s %s failed: %s (%s)", request.method, request.url.path, exc.code, exc.message
                )
            return problem_response(exc)
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result.model_dump(mode="json"), status_code=route.status)
