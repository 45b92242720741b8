"""The `purge` capability (cron): raw snapshots older than the tenant's retention are deleted from
S3 and their database pointers nulled; a verification pass then lists what is left under the
tenant's prefix and deletes (and reports) any survivor, referenced or not. Idempotent: a second run
finds nothing. Each tenant's run is audited with its counts.

Knative refuses a revision timeout above ``max-revision-timeout-seconds`` (600 s by default), so a
run works within a time budget: an hourly tick purges the due tenants (never purged, or not for
``every``), the longest-waiting first, until the budget is spent; the others wait for the next
tick. Each tenant's run is recorded in its own transaction, so a tick cut short loses nothing.

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


@dataclass(frozen=True, slots=True)
class TenantRetention:
    """A tenant's raw-snapshot retention and when its last purge finished (None: never)."""

    tenant_id: UUID
    days: int
    last_run: datetime | None


@dataclass(frozen=True, slots=True)
class PurgeRun:
    """One tick's work: each purged tenant's counts, the due tenants left for the next tick, and
    the tenants whose purge failed (rolled back whole; due again at the next tick)."""

    results: list[dict[str, Any]]
    deferred: int
    failed: tuple[UUID, ...] = ()


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

    async def finished(self, at: datetime, objects_deleted: int, survivors_remaining: int) -> None:
        """The tenant's run recorded (its place in the queue), in this transaction."""
        ...


class PurgeStore(Protocol):
    async def retention(self) -> list[TenantRetention]:
        """Every tenant, its raw-snapshot retention in days and its last finished purge."""
        ...

    def unit(self, tenant_id: UUID) -> AbstractAsyncContextManager[PurgeUnit]: ...

    async def chain_verified(self, tenant_id: UUID, problems: int) -> None:
        """What the audit-chain verification after the tenant's purge found, kept with its run
        (the database's exporter reports it whatever pod is alive)."""
        ...


@dataclass(slots=True)
class Purger:
    store: PurgeStore
    objects: ObjectStore
    bucket: str
    clock: Clock
    budget: timedelta = timedelta(minutes=8)
    every: timedelta = timedelta(hours=20)

    async def run(self, now: datetime | None = None) -> PurgeRun:
        """The due tenants, longest-waiting first, until the budget is spent (at least one
        tenant per tick, so the queue always moves)."""
        started = self.clock.now()
        now = now or started
        due = [t for t in await self.store.retention()
               if t.last_run is None or t.last_run <= now - self.every]  # fmt: skip
        due.sort(key=lambda t: (t.last_run is not None, t.last_run or now, t.tenant_id))
        results: list[dict[str, Any]] = []
        failed: list[UUID] = []
        for position, tenant in enumerate(due):
            if (results or failed) and self.clock.now() - started >= self.budget:
                logger.info(
                    "purge budget of %s spent: %d due tenants wait for the next tick",
                    self.budget, len(due) - position,
                )  # fmt: skip
                return PurgeRun(results, len(due) - position, tuple(failed))
            try:
                results.append(await self.purge_tenant(tenant.tenant_id, tenant.days, now))
            except TransientError as error:  # fails alone: the other tenants still get purged
                logger.error("purge of tenant %s failed: %s", tenant.tenant_id, error.message)
                failed.append(tenant.tenant_id)
        return PurgeRun(results, 0, tuple(failed))

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
                "objects_deleted": (deleted := len(keys) + len(survivors)),
                "pointers_cleared": cleared,
                "survivors": len(survivors),
                "survivors_remaining": len(remaining),
            }
            await unit.audit("retention.purge", self.bucket, counts)
            await unit.finished(now, deleted, len(remaining))
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
