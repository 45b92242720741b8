"""The duplicates review: pairs of customers that may be one person, for a person to decide.

Ingest keeps a pair when a pass started a new customer although its closest customer scored in
the review band (``Decision.review``): too weak to link on at the gallery's size, too strong to
forget. A pair leaves the list when either customer goes (a merge or an erasure removes the rows)
or when the two are marked "not the same person".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from visitlens.auth.principal import Principal
from visitlens.ports import DbScope


@dataclass(frozen=True, slots=True)
class PersonGlance:
    """What a reviewer compares at a glance: when and how often, and a face to look at."""

    id: UUID
    first_seen_at: datetime
    last_seen_at: datetime
    visit_count: int
    snapshot_sighting_id: UUID | None
    """The newest sighting whose snapshot is still retained (its image: the snapshot route)."""


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    customer: PersonGlance
    """The newer customer, created by the pass in the review band."""
    candidate: PersonGlance
    """The customer it scored closest to."""
    similarity: float
    created_at: datetime


class DuplicatesReader(Protocol):
    async def open_pairs(
        self, scope: DbScope, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[DuplicatePair]:
        """Open pairs, newest first, after the keyset ``(created_at, customer id)``."""
        ...


@dataclass(slots=True)
class DuplicatesReview:
    reader: DuplicatesReader

    async def open_pairs(
        self,
        principal: Principal,
        tenant_id: UUID,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[DuplicatePair]:
        return await self.reader.open_pairs(principal.db_scope(tenant_id), after, limit)
