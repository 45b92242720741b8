"""The event-publisher port over HTTP: CloudEvents posted to the sink (``K_SINK``: a Knative
SinkBinding to the Broker, or the local gateway's), with the publisher's token, a few tries."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from visitlens.adapters.logs import traced
from visitlens.auth.secrets import read_token_file
from visitlens.config import EventAuthSettings

logger = logging.getLogger(__name__)


async def publish(
    settings: EventAuthSettings, attributes: dict[str, Any], data: dict[str, Any]
) -> bool:
    """Post an event to the sink (``K_SINK``: a Knative SinkBinding, or the local gateway's
    Broker) with the publisher's token, a few tries; False (logged) when there is no sink or it
    stays unavailable — consumers that must not miss anything also reconcile on a schedule."""
    return await publish_all(settings, [(attributes, data)]) == 1


async def publish_all(
    settings: EventAuthSettings, events: list[tuple[dict[str, Any], dict[str, Any]]]
) -> int:
    """:func:`publish` for several events over one connection; how many were accepted."""
    sink = settings.sink
    if not sink or not events:
        return 0
    token = read_token_file(settings.publish_token_file)
    published = 0
    async with httpx.AsyncClient(timeout=5) as client:
        for attributes, data in events:
            headers, body = to_binary(CloudEvent(traced(attributes), data))
            if token:
                headers["authorization"] = f"Bearer {token}"
            try:
                async for attempt in AsyncRetrying(
                    stop=stop_after_attempt(3),
                    wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
                    retry=retry_if_exception_type(httpx.HTTPError),
                    reraise=True,
                ):
                    with attempt:
                        response = await client.post(sink, headers=dict(headers), content=body)
                        response.raise_for_status()
            except httpx.HTTPError as exc:
                logger.warning(
                    "event %s not published: %s", attributes.get("id"), type(exc).__name__
                )
                continue
            published += 1
    return published


class BrokerPublisher:
    """:class:`visitlens.ports.EventPublisher` onto the sink (``K_SINK``) over HTTP."""

    def __init__(self, settings: EventAuthSettings) -> None:
        self._settings = settings

    async def publish(self, events: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> None:
        await publish_all(self._settings, [(dict(a), dict(d)) for a, d in events])
