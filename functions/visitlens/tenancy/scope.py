"""The row-level-security scope of one database transaction."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class DbScope:
    """What row-level security sees in one transaction; built only from a verified principal."""

    tenant_id: UUID | None
    system_admin: bool = False
    actor_id: UUID | None = None

    @classmethod
    def none(cls) -> DbScope:
        """No tenant: every tenant-scoped table looks empty."""
        return cls(tenant_id=None)
