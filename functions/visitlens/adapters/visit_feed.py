"""The live monitor's wake-ups: PostgreSQL LISTEN on the visit-change channel (asyncpg).

:class:`visitlens.ports.VisitChanges` over one LISTEN connection per instance. A trigger notifies
``tenant,site`` on every visit change; the streams of that tenant wake and read what changed. A
lost connection is re-made on the next subscription; meanwhile streams poll.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import asyncpg

logger = logging.getLogger(__name__)
CHANNEL = "visitlens_visits"


class VisitFeed:
    """One LISTEN connection per instance; wakes the subscribed streams of the notified tenant."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._subscribers: dict[UUID, set[asyncio.Event]] = {}

    async def subscribe(self, tenant_id: UUID) -> asyncio.Event:
        await self._connect()
        wake = asyncio.Event()
        self._subscribers.setdefault(tenant_id, set()).add(wake)
        return wake

    def unsubscribe(self, tenant_id: UUID, wake: asyncio.Event) -> None:
        self._subscribers.get(tenant_id, set()).discard(wake)

    async def _connect(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            try:
                self._conn = await asyncpg.connect(self._dsn)
                await self._conn.add_listener(CHANNEL, self._notified)
            except (OSError, asyncpg.PostgresError) as exc:  # streams fall back to polling
                logger.warning("monitor: LISTEN unavailable (%s); polling", type(exc).__name__)
                self._conn = None

    def _notified(self, conn: Any, pid: int, channel: str, payload: object) -> None:
        tenant, _, _site = str(payload).partition(",")
        try:
            key = UUID(tenant)
        except ValueError:
            return
        for wake in self._subscribers.get(key, ()):
            wake.set()
