"""What merging and erasure share: the port of their unit of work, and the gallery moves.

A unit of work sees one tenant (row-level security) and commits whole or not at all; the use-cases
make every gallery change inside it, last, so a gallery failure leaves the database unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import numpy as np

from visitlens.auth.principal import Principal
from visitlens.errors import NotFound
from visitlens.ports import DbScope, Gallery, GalleryRow, PersonKind

logger = logging.getLogger(__name__)

SNAPSHOT_FIELDS = ("first_seen_at", "last_seen_at", "first_site_id", "visit_count", "gender",
                   "age_band", "created_at")  # fmt: skip
"""The customer fields a merge records, as text, to restore them on an unmerge."""


@dataclass(frozen=True, slots=True)
class Customer:
    id: UUID
    first_seen_at: datetime
    last_seen_at: datetime
    first_site_id: UUID | None
    visit_count: int
    gender: str | None
    age_band: str | None
    created_at: datetime

    def snapshot(self) -> dict[str, str | None]:
        values = {f: getattr(self, f) for f in SNAPSHOT_FIELDS}
        return {f: (str(v) if v is not None else None) for f, v in values.items()}


@dataclass(frozen=True, slots=True)
class VisitRef:
    id: UUID
    customer_id: UUID | None
    is_new: bool
    site_id: UUID
    started_at: datetime


@dataclass(frozen=True, slots=True)
class MovedView:
    """A stored view that changed owner: its id and embedding (little-endian float32)."""

    id: UUID
    embedding: bytes | None


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """What a merge moved, to put exactly that back."""

    id: UUID
    kept_id: UUID
    merged_id: UUID
    merged_customer: dict[str, Any]
    kept_customer: dict[str, Any]
    sighting_ids: list[UUID]
    visits: list[dict[str, Any]]
    """``{"id", "is_new", "owner": "kept" | "merged"}`` for each visit of both, before."""
    embedding_ids: list[UUID]
    undone: bool


class PersonsUnit(Protocol):
    """The port of one merge, unmerge, not-same mark or erasure (a PostgreSQL transaction)."""

    async def lock_customers(self, ids: Sequence[UUID]) -> dict[UUID, Customer]:
        """Locks those that exist, in id order (two merges of one pair cannot deadlock)."""
        ...

    async def marked_distinct(self, a: UUID, b: UUID) -> bool: ...
    async def add_distinct_mark(self, a: UUID, b: UUID, by: UUID) -> bool:
        """True when the mark is new."""
        ...

    async def visits_of(self, people: Sequence[UUID]) -> list[VisitRef]: ...
    async def move_sightings(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[UUID]:
        """``source``'s sightings (of ``only``, if given) now ``target``'s; their ids."""
        ...

    async def move_visits(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> None: ...
    async def move_views(
        self, source: UUID, target: UUID, only: Sequence[UUID] | None = None
    ) -> list[MovedView]: ...
    async def absorb(self, kept: UUID, merged: Customer) -> None:
        """The kept customer takes the merged one's labels where it has none, and the wider of
        their first/last seen."""
        ...

    async def delete_customer(self, customer: UUID) -> None: ...
    async def recompute_customer(self, customer: UUID) -> None:
        """First/last seen and the visit count from the visits; only the earliest visit is new."""
        ...

    async def add_merge(
        self, kept: Customer, merged: Customer, sighting_ids: Sequence[UUID],
        visits: list[dict[str, Any]], view_ids: Sequence[UUID], by: UUID,
    ) -> UUID: ...  # fmt: skip
    async def merge_record(self, merge_id: UUID) -> MergeRecord | None:
        """Locked for the unmerge."""
        ...

    async def restore_customer(self, customer: UUID, snapshot: dict[str, Any]) -> None: ...
    async def restore_labels(self, customer: UUID, snapshot: dict[str, Any]) -> None:
        """Gender, age band and first seen as the snapshot had them."""
        ...

    async def set_visit_new(self, visit_id: UUID, is_new: bool) -> None: ...
    async def recount(self, customer: UUID) -> None:
        """Visit count and last seen from the customer's visits."""
        ...

    async def mark_undone(self, merge_id: UUID) -> None: ...
    async def visit_starts(self, visit_ids: Sequence[UUID]) -> list[tuple[UUID, datetime]]: ...
    async def snapshot_keys(self, customer: UUID) -> set[str]: ...
    async def erase_customer(self, customer: UUID) -> tuple[int, int]:
        """The customer, their sightings, views, merge records and marks deleted (their visits
        stay, without a person); (sightings, views) deleted."""
        ...

    async def refresh_stats(self, visits: Iterable[tuple[UUID, datetime]]) -> None:
        """Re-materialise the local hours of these (site, started_at) visits."""
        ...

    async def audit(
        self, principal: Principal, action: str, target_type: str, target_id: UUID | str,
        details: dict[str, Any],
    ) -> None: ...  # fmt: skip


class PersonsStore(Protocol):
    def unit(self, scope: DbScope) -> AbstractAsyncContextManager[PersonsUnit]: ...


async def lock_customers(unit: PersonsUnit, ids: Sequence[UUID]) -> dict[UUID, Customer]:
    """Every one of ``ids`` locked; 404 for a missing one."""
    found = await unit.lock_customers(ids)
    for person in ids:
        if person not in found:
            raise NotFound(f"customer {person} not found")
    return found


async def move_vectors(
    gallery: Gallery, tenant_id: UUID, views: Sequence[MovedView], person: UUID
) -> None:
    """Point these views at ``person`` in the gallery: delete, then insert."""
    kept = [v for v in views if v.embedding is not None]
    if not kept:
        return
    await gallery.delete_views(tenant_id, [v.id for v in kept])
    await gallery.insert(
        [
            GalleryRow(v.id, tenant_id, person, PersonKind.CUSTOMER,
                       np.frombuffer(v.embedding or b"", "<f4"))
            for v in kept
        ]
    )  # fmt: skip
