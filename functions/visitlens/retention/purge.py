"""The `purge` capability (cron): raw snapshots older than the tenant's retention are deleted from
S3 and their database pointers nulled; a verification pass then lists what is left under the
tenant's prefix and deletes (and reports) any survivor, referenced or not. Idempotent: a second run
finds nothing. Each tenant's run is audited with its counts.

Keys in ``faces-raw`` are ``tenant/site/camera/YYYY-MM-DD/track.jpg`` (the capture date, UTC), so
age is judged from the key as well as from the object's own timestamp.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from visitlens.adapters.postgres import Database
from visitlens.api import audit
from visitlens.config import S3Settings
from visitlens.errors import TransientError
from visitlens.tenancy.object_keys import keys_of_tenant, tenant_prefix
from visitlens.tenancy.scope import DbScope

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


@dataclass(slots=True)
class Purger:
    db: Database
    s3: Minio
    s3_settings: S3Settings

    async def run(self, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or datetime.now(UTC)
        async with self.db.transaction(DbScope(None, system_admin=True)) as conn:
            tenants = await conn.fetch("SELECT id, raw_retention_days FROM tenants")
        return [await self.purge_tenant(t["id"], t["raw_retention_days"], now) for t in tenants]

    async def purge_tenant(self, tenant_id: UUID, days: int, now: datetime) -> dict[str, Any]:
        cutoff = now - timedelta(days=days)
        prefix = tenant_prefix(tenant_id)
        run_id = uuid.uuid4()
        async with self.db.transaction(DbScope(tenant_id)) as conn:
            old = await conn.fetch(
                "SELECT snapshot_key FROM sightings WHERE captured_at < $1 "
                "AND snapshot_key IS NOT NULL UNION SELECT snapshot_key FROM person_embeddings "
                "WHERE created_at < $1 AND snapshot_key LIKE $2",
                cutoff, prefix + "%",
            )  # fmt: skip
            keys, _foreign = keys_of_tenant(list({r["snapshot_key"] for r in old}), tenant_id)
            cleared = await conn.execute(
                "UPDATE sightings SET snapshot_key = NULL WHERE captured_at < $1 "
                "AND snapshot_key IS NOT NULL",
                cutoff,
            )
            cleared_views = await conn.execute(
                "UPDATE person_embeddings SET snapshot_key = NULL WHERE created_at < $1 "
                "AND snapshot_key LIKE $2",
                cutoff, prefix + "%",
            )  # fmt: skip
            # Objects go before the commit: a failed deletion leaves the pointers for the next run.
            await self._delete(keys)
            survivors = await self._survivors(prefix, cutoff)
            await self._delete(keys_of_tenant(survivors, tenant_id)[0])
            remaining = await self._survivors(prefix, cutoff)
            counts = {
                "run_id": str(run_id),
                "older_than": cutoff.isoformat(),
                "objects_deleted": len(keys) + len(survivors),
                "pointers_cleared": int(cleared.split()[-1]) + int(cleared_views.split()[-1]),
                "survivors": len(survivors),
                "survivors_remaining": len(remaining),
            }
            await audit.record(
                conn, None, "retention.purge", "bucket", self.s3_settings.raw_bucket, tenant_id,
                counts,
            )  # fmt: skip
        if remaining:
            logger.error(
                "purge %s: %d snapshots survive in tenant %s", run_id, len(remaining), tenant_id
            )
        logger.info("purge %s tenant %s: %s", run_id, tenant_id, counts)
        return {"tenant_id": str(tenant_id), "bucket": self.s3_settings.raw_bucket, **counts}

    async def _survivors(self, prefix: str, cutoff: datetime) -> list[str]:
        """Objects under the tenant's prefix older than the cutoff (by key date or timestamp)."""

        def scan() -> list[str]:
            found = []
            for item in self.s3.list_objects(
                self.s3_settings.raw_bucket, prefix=prefix, recursive=True
            ):
                name = str(item.object_name)
                dated = key_date(name)
                modified = item.last_modified
                if (dated is not None and dated < cutoff.date()) or (
                    dated is None and modified is not None and modified < cutoff
                ):
                    found.append(name)
            return found

        try:
            return await asyncio.to_thread(scan)
        except S3Error as exc:
            raise TransientError(f"listing {prefix} failed: {exc.code}") from exc

    async def _delete(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete() -> int:
            errors = list(
                self.s3.remove_objects(self.s3_settings.raw_bucket, [DeleteObject(k) for k in keys])
            )
            return len(errors)

        try:
            failed = await asyncio.to_thread(delete)
        except S3Error as exc:
            raise TransientError(f"deleting snapshots failed: {exc.code}") from exc
        if failed:
            raise TransientError(f"{failed} snapshots could not be deleted; the next run retries")
