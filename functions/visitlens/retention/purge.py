"""The `purge` capability (cron): raw snapshots older than the tenant's retention are deleted from
S3 and their database pointers nulled; a verification pass then lists what is left under the
tenant's prefix and deletes (and reports) any survivor, referenced or not. Idempotent: a second run
finds nothing. Each tenant's run is audited with its counts.

Keys in ``faces-raw`` are ``tenant/site/camera/YYYY-MM-DD/track.jpg`` (the capture date, UTC), so
age is judged from the key as well as from the object's own timestamp.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from visitlens.errors import TransientError
from visitlens.ports import Clock, ObjectStore
from visitlens.tenancy.object_keys import keys_of_tenant, tenant_prefix

logger = logging.getLogger(__name__)
_KEY_DATE = re.compile(r"/(\d{4}-\d{2}-\d{2})/[^/]+$")


def key_date(key: str) -> date | None:
    match = _KEY_DATE.search(key)
    if match is None:
        return None
    try:
        return date.fromisoformat(match[1])
    except ValueError:
        return None


class PurgeUnit(Protocol):
    """The port of one tenant's purge transaction (PostgreSQL in production)."""

    async def expired_keys(self, cutoff: datetime, prefix: str) -> list[str]:
        """Snapshot keys that sightings and views captured before ``cutoff`` point at."""
        ...

    async def clear_pointers(self, cutoff: datetime, prefix: str) -> int:
        """Those pointers nulled; how many."""
        ...

    async def audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        """An audit entry by the system itself, in this transaction."""
        ...


class PurgeStore(Protocol):
    async def retention(self) -> list[tuple[UUID, int]]:
        """Every tenant and its raw-snapshot retention in days."""
        ...

    def unit(self, tenant_id: UUID) -> AbstractAsyncContextManager[PurgeUnit]: ...


@dataclass(slots=True)
class Purger:
    store: PurgeStore
    objects: ObjectStore
    bucket: str
    clock: Clock

    async def run(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or self.clock.now()
        tenants = await self.store.retention()
        return [await self.purge_tenant(tenant, days, now) for tenant, days in tenants]

    async def purge_tenant(self, tenant_id: UUID, days: int, now: datetime) -> dict[str, Any]:
        cutoff = now - timedelta(days=days)
        prefix = tenant_prefix(tenant_id)
        run_id = uuid.uuid4()
        async with self.store.unit(tenant_id) as unit:
            keys, _foreign = keys_of_tenant(
                sorted(set(await unit.expired_keys(cutoff, prefix))), tenant_id
            )
            cleared = await unit.clear_pointers(cutoff, prefix)
            # Objects go before the commit: a failed deletion leaves the pointers for the next run.
            await self._delete(keys)
            survivors = await self._survivors(prefix, cutoff)
            await self._delete(keys_of_tenant(survivors, tenant_id)[0])
            remaining = await self._survivors(prefix, cutoff)
            counts = {
                "run_id": str(run_id),
                "older_than": cutoff.isoformat(),
                "objects_deleted": len(keys) + len(survivors),
                "pointers_cleared": cleared,
                "survivors": len(survivors),
                "survivors_remaining": len(remaining),
            }
            await unit.audit("retention.purge", self.bucket, counts)
        if remaining:
            logger.error(
                "purge %s: %d snapshots survive in tenant %s", run_id, len(remaining), tenant_id
            )
        logger.info("purge %s tenant %s: %s", run_id, tenant_id, counts)
        return {"tenant_id": str(tenant_id), "bucket": self.bucket, **counts}

    async def _survivors(self, prefix: str, cutoff: datetime) -> list[str]:
        """Objects under the tenant's prefix older than the cutoff (by key date or timestamp)."""
        found = []
        for item in await self.objects.list(self.bucket, prefix):
            dated = key_date(item.key)
            if (dated is not None and dated < cutoff.date()) or (
                dated is None and item.modified is not None and item.modified < cutoff
            ):
                found.append(item.key)
        return found

    async def _delete(self, keys: list[str]) -> None:
        try:
            await self.objects.delete(self.bucket, keys)
        except TransientError as exc:
            raise TransientError(f"{exc.message}; the next run retries") from exc
