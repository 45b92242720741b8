"""The right to erasure: a customer deleted from every store, counts kept anonymously.

PostgreSQL: the customer, their sightings, embeddings, merge records and not-same marks are
deleted; their visits stay with no person (``customer_id`` NULL) so that footfall stays true.
Milvus: every vector of the person. S3: every snapshot their rows pointed at. The audit entry
names a receipt id, not the person. The hourly statistics of their visits are refreshed.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from visitlens.auth.principal import Principal
from visitlens.errors import TransientError
from visitlens.persons.common import PersonsStore, lock_customers
from visitlens.ports import Gallery, ObjectStore
from visitlens.tenancy.object_keys import keys_of_tenant

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Eraser:
    store: PersonsStore
    gallery: Gallery
    objects: ObjectStore
    raw_bucket: str

    async def erase(self, principal: Principal, tenant_id: UUID, customer: UUID) -> dict[str, Any]:
        receipt = uuid.uuid4()
        async with self.store.unit(principal.db_scope(tenant_id)) as unit:
            await lock_customers(unit, [customer])
            keys = await unit.snapshot_keys(customer)
            visits = [(v.site_id, v.started_at) for v in await unit.visits_of([customer])]
            sightings, views = await unit.erase_customer(customer)  # its visits stay, anonymous
            await unit.refresh_stats(visits)
            counts = {
                "visits_anonymised": len(visits),
                "sightings_deleted": sightings,
                "embeddings_deleted": views,
                "snapshots_deleted": len(keys),
            }
            await unit.audit(principal, "person.erase", "erasure", receipt, counts)
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
        try:
            await self.objects.delete(self.raw_bucket, keys)
        except TransientError as exc:
            raise TransientError(f"snapshot deletion failed ({exc.message}); run it again") from exc
