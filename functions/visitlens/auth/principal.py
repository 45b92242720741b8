"""Who is calling, with which role, limited to which tenant, sites and cameras."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from visitlens.errors import Forbidden
from visitlens.ports import DbScope


class Role(StrEnum):
    SYSTEM_ADMIN = "system_admin"
    TENANT_ADMIN = "tenant_admin"
    SITE_MANAGER = "site_manager"
    WORKER = "worker"


class PrincipalKind(StrEnum):
    USER = "user"
    API_KEY = "api_key"


TENANT_ROLES = frozenset({Role.TENANT_ADMIN, Role.SITE_MANAGER, Role.WORKER})


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller. Built only from a verified token or a verified credential."""

    subject: UUID
    kind: PrincipalKind
    role: Role
    tenant_id: UUID | None
    site_ids: frozenset[UUID] = field(default_factory=frozenset)
    camera_ids: frozenset[UUID] = field(default_factory=frozenset)

    @property
    def is_system_admin(self) -> bool:
        return self.role is Role.SYSTEM_ADMIN

    def require_role(self, *roles: Role) -> None:
        """403 unless the caller has one of ``roles`` (a system admin always passes)."""
        if self.is_system_admin or self.role in roles:
            return
        raise Forbidden(f"role {self.role} may not do this (needs one of: {', '.join(roles)})")

    def require_tenant(self, tenant_id: UUID) -> None:
        """403 unless the caller belongs to ``tenant_id`` (or is a system admin)."""
        if not self.is_system_admin and self.tenant_id != tenant_id:
            raise Forbidden("this tenant is outside the caller's scope")

    def sees_all_sites(self) -> bool:
        return self.role in (Role.SYSTEM_ADMIN, Role.TENANT_ADMIN)

    def require_site(self, site_id: UUID) -> None:
        if not self.sees_all_sites() and site_id not in self.site_ids:
            raise Forbidden("this site is outside the caller's scope")

    def require_camera(self, site_id: UUID, camera_id: UUID) -> None:
        self.require_site(site_id)
        if self.role is Role.WORKER and camera_id not in self.camera_ids:
            raise Forbidden("this camera is outside the caller's scope")

    def visible_sites(self, site_ids: Iterable[UUID]) -> list[UUID]:
        return [s for s in site_ids if self.sees_all_sites() or s in self.site_ids]

    def db_scope(self, tenant_id: UUID | None) -> DbScope:
        """The RLS scope for acting on ``tenant_id``; callers check ``require_tenant`` first."""
        if tenant_id is not None:
            self.require_tenant(tenant_id)
        return DbScope(
            tenant_id=tenant_id, system_admin=self.is_system_admin, actor_id=self.subject
        )
