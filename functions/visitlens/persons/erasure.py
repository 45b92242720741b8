"""The right to erasure: a customer deleted from every store, counts kept anonymously.

PostgreSQL: the customer, their sightings, embeddings, merge records and not-same marks are
deleted; their visits stay with no person (``customer_id`` NULL) so that footfall stays true.
Milvus: every vector of the person. S3: every snapshot their rows pointed at. The audit entry
names a receipt id, not the person. The hourly statistics of their visits are refreshed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from visitlens.adapters.gallery import Gallery
from visitlens.adapters.postgres import Database
from visitlens.api import audit
from visitlens.auth.principal import Principal
from visitlens.config import S3Settings
from visitlens.errors import TransientError
from visitlens.persons.common import lock_customers, refresh_stats
from visitlens.tenancy.object_keys import keys_of_tenant

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Eraser:
    db: Database
    gallery: Gallery
    s3: Minio
    s3_settings: S3Settings

    async def erase(self, principal: Principal, tenant_id: UUID, customer: UUID) -> dict[str, Any]:
        receipt = uuid.uuid4()
        async with self.db.transaction(principal.db_scope(tenant_id)) as conn:
            await lock_customers(conn, [customer])
            keys = {
                r["snapshot_key"]
                for r in await conn.fetch(
                    "SELECT snapshot_key FROM sightings WHERE customer_id = $1 "
                    "AND snapshot_key IS NOT NULL UNION SELECT snapshot_key FROM person_embeddings "
                    "WHERE customer_id = $1 AND snapshot_key IS NOT NULL",
                    customer,
                )
            }
            visits = await conn.fetch(
                "SELECT site_id, started_at FROM visits WHERE customer_id = $1", customer
            )
            sightings = await conn.execute("DELETE FROM sightings WHERE customer_id = $1", customer)
            views = await conn.execute(
                "DELETE FROM person_embeddings WHERE customer_id = $1", customer
            )
            await conn.execute("DELETE FROM merges WHERE kept_id = $1 OR merged_id = $1", customer)
            await conn.execute(
                "DELETE FROM not_same_person WHERE person_a = $1 OR person_b = $1", customer
            )
            await conn.execute("DELETE FROM customers WHERE id = $1", customer)  # visits → NULL
            await refresh_stats(conn, [(v["site_id"], v["started_at"]) for v in visits])
            counts = {
                "visits_anonymised": len(visits),
                "sightings_deleted": int(sightings.split()[-1]),
                "embeddings_deleted": int(views.split()[-1]),
                "snapshots_deleted": len(keys),
            }
            await audit.record(
                conn, principal, "person.erase", "erasure", receipt, tenant_id, counts
            )
            # Vectors and snapshots go before the commit: if either fails, nothing is committed
            # and the erasure can simply be run again (deleting what is already gone is fine).
            await self.gallery.delete_person(tenant_id, customer)
            mine, foreign = keys_of_tenant(sorted(keys), tenant_id)
            if foreign:  # never delete an object outside the tenant, whatever a row says
                logger.error(
                    "erasure %s: %d snapshot keys outside tenant %s not deleted",
                    receipt, len(foreign), tenant_id,
                )  # fmt: skip
            await self._delete_objects(mine)
        logger.info("erasure %s in tenant %s: %s", receipt, tenant_id, counts)
        return {"receipt_id": receipt, **counts}

    async def _delete_objects(self, keys: list[str]) -> None:
        if not keys:
            return

        def delete() -> list[str]:
            errors = self.s3.remove_objects(
                self.s3_settings.raw_bucket, [DeleteObject(k) for k in keys]
            )
            return [str(e.name) for e in errors]

        try:
            failed = await asyncio.to_thread(delete)
        except S3Error as exc:
            raise TransientError(f"snapshot deletion failed: {exc.code}; run it again") from exc
        if failed:
            raise TransientError(f"{len(failed)} snapshots could not be deleted; run it again")
