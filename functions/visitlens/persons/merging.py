"""Merge person B into A (one transaction), split a merge back out, mark a pair as different.

A merge re-points B's sightings, visits and embeddings to A, moves B's vectors in Milvus, removes
B, recomputes which of A's visits is the first ("new"), refreshes the hourly statistics of the
visits involved, and records what it moved (``merges``) with an audit entry. ``unmerge`` puts
exactly those rows back. A pair marked "not the same person" can not be merged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from visitlens.auth.principal import Principal
from visitlens.errors import Conflict, InvalidInput, NotFound
from visitlens.persons.common import PersonsStore, lock_customers, move_vectors
from visitlens.ports import Gallery

logger = logging.getLogger(__name__)


def pair(a: UUID, b: UUID) -> tuple[UUID, UUID]:
    return (a, b) if str(a) < str(b) else (b, a)


@dataclass(slots=True)
class PersonMerger:
    store: PersonsStore
    gallery: Gallery

    async def merge(
        self, principal: Principal, tenant_id: UUID, kept: UUID, merged: UUID
    ) -> dict[str, Any]:
        if kept == merged:
            raise InvalidInput("a person cannot be merged into itself", field="body.merged_id")
        async with self.store.unit(principal.db_scope(tenant_id)) as unit:
            people = await lock_customers(unit, [kept, merged])
            if await unit.marked_distinct(*pair(kept, merged)):
                raise Conflict("these two were marked as different people; remove the mark first")
            sightings = await unit.move_sightings(merged, kept)
            before = await unit.visits_of([kept, merged])
            await unit.move_visits(merged, kept)
            moved_views = await unit.move_views(merged, kept)
            await unit.absorb(kept, people[merged])
            await unit.delete_customer(merged)
            await unit.recompute_customer(kept)
            visits = [
                {"id": str(v.id), "is_new": v.is_new,
                 "owner": "merged" if v.customer_id == merged else "kept"}
                for v in before
            ]  # fmt: skip
            merge_id = await unit.add_merge(
                people[kept], people[merged], sightings, visits, [v.id for v in moved_views],
                principal.subject,
            )  # fmt: skip
            await unit.refresh_stats([(v.site_id, v.started_at) for v in before])
            moved = {
                "visits": sum(1 for v in visits if v["owner"] == "merged"),
                "sightings": len(sightings),
                "embeddings": len(moved_views),
            }
            await unit.audit(principal, "person.merge", "customer", kept,
                             {"merged_id": str(merged), "merge_id": str(merge_id), **moved})  # fmt: skip
            # The gallery last, inside the transaction: if it fails, nothing in PostgreSQL changed.
            await move_vectors(self.gallery, tenant_id, moved_views, kept)
        logger.info("merge %s: %s into %s (%s)", merge_id, merged, kept, moved)
        return {"merge_id": merge_id, "kept_id": kept, "merged_id": merged, "moved": moved}

    async def unmerge(
        self, principal: Principal, tenant_id: UUID, merge_id: UUID
    ) -> dict[str, Any]:
        async with self.store.unit(principal.db_scope(tenant_id)) as unit:
            record = await unit.merge_record(merge_id)
            if record is None:
                raise NotFound(f"merge {merge_id} not found")
            if record.undone:
                raise Conflict("this merge was already undone")
            kept, merged = record.kept_id, record.merged_id
            if kept not in await unit.lock_customers([kept]):
                raise Conflict(f"{kept} was itself merged or erased since; undo that first")
            await unit.restore_customer(merged, record.merged_customer)
            sightings = await unit.move_sightings(kept, merged, only=record.sighting_ids)
            back = [UUID(v["id"]) for v in record.visits if v["owner"] == "merged"]
            await unit.move_visits(kept, merged, only=back)
            for v in record.visits:
                await unit.set_visit_new(UUID(v["id"]), v["is_new"])
            views = await unit.move_views(kept, merged, only=record.embedding_ids)
            await unit.restore_labels(kept, record.kept_customer)
            for person in (kept, merged):
                await unit.recount(person)
            await unit.mark_undone(merge_id)
            touched = await unit.visit_starts([UUID(v["id"]) for v in record.visits])
            await unit.refresh_stats(touched)
            moved = {"visits": len(back), "sightings": len(sightings), "embeddings": len(views)}
            await unit.audit(principal, "person.unmerge", "customer", merged,
                             {"kept_id": str(kept), "merge_id": str(merge_id), **moved})  # fmt: skip
            await move_vectors(self.gallery, tenant_id, views, merged)
        return {"merge_id": merge_id, "kept_id": kept, "merged_id": merged, "moved": moved}

    async def mark_distinct(
        self, principal: Principal, tenant_id: UUID, first: UUID, second: UUID
    ) -> bool:
        """Mark two persons as different people; True when the mark is new."""
        if first == second:
            raise InvalidInput("two different persons are needed", field="body.person_b")
        a, b = pair(first, second)
        async with self.store.unit(principal.db_scope(tenant_id)) as unit:
            await lock_customers(unit, [a, b])
            created = await unit.add_distinct_mark(a, b, principal.subject)
            if created:
                await unit.audit(principal, "person.not_same", "customer", a, {"other_id": str(b)})
        return created
