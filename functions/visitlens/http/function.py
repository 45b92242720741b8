"""One function's request handler: the health probes, then its CloudEvent deliveries (if it takes
any) and its route table. ``visitlens.wiring`` builds one per function; its ``main.py`` serves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from visitlens.adapters.metrics import note_route
from visitlens.http import health
from visitlens.http.cloudevents import DeliveryVerifier, is_delivery
from visitlens.http.router import Authenticator, Router
from visitlens.lazy import Lazy

Endpoint = Callable[[Request], Awaitable[Response]]


class Checked(Protocol):
    """A function's services name the dependencies its readiness probe asks."""

    @property
    def checks(self) -> Mapping[str, health.Check]: ...


class Served(Checked, Protocol):
    """A routed function's services also authenticate the caller."""

    @property
    def auth(self) -> Authenticator: ...


S = TypeVar("S", bound=Checked)


async def checks_of(services: Lazy[S]) -> Mapping[str, health.Check]:
    """Builds the services (a failure there is "not ready" too), then names their checks."""
    return (await services()).checks


class RoutedFunction(Generic[S]):
    """Probes, then CloudEvent deliveries to ``events`` (as ``event_route`` in the metrics), then
    the router. ``live=False`` where the route table serves ``/healthz`` itself (the API)."""

    def __init__(
        self,
        router: Router[S],
        services: Lazy[S],
        *,
        events: Endpoint | None = None,
        event_route: str = "/ (events)",
        live: bool = True,
    ) -> None:
        self._router = router
        self._services = services
        self._events = events
        self._event_route = event_route
        self._live = live

    async def __call__(self, request: Request) -> Response:
        answer = await health.probe(request, lambda: checks_of(self._services), live=self._live)
        if answer is not None:
            return answer
        if self._events is not None and is_delivery(request):
            note_route(request, self._event_route)
            return await self._events(request)
        return await self._router.dispatch(request)


class EventEndpoint(Generic[S]):
    """Takes CloudEvent deliveries: the function's services and the verifier of the sender's
    token (the Broker's, a PingSource's or the bucket bridge's)."""

    def __init__(self, services: Lazy[S], deliveries: DeliveryVerifier) -> None:
        self._services = services
        self._deliveries = deliveries


class EventFunction(EventEndpoint[S]):
    """A whole function that takes events: the health probes, then :meth:`handle`."""

    async def __call__(self, request: Request) -> Response:
        answer = await health.probe(request, lambda: checks_of(self._services))
        if answer is not None:
            return answer
        return await self.handle(request)

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError
