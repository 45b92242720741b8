"""Object keys in the raw snapshot bucket belong to exactly one tenant, site and camera.

A key is ``tenant/site/camera/YYYY-MM-DD/name.jpg``. Every key that enters the system (an event's
snapshot key) must lie under the sender's own camera prefix, and every deletion re-checks that a
key lies under the tenant in scope: a row can never make the platform delete another tenant's
object, whatever it holds.
"""

from __future__ import annotations

import re
from uuid import UUID

from visitlens.errors import InvalidInput

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_KEY_LENGTH = 512


def is_safe_key(key: str) -> bool:
    """A plain relative key: segments of ``[A-Za-z0-9._-]``, no ``.``/``..``, no empty segment."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return False
    return all(_SEGMENT.match(part) and part not in (".", "..") for part in key.split("/"))


def camera_prefix(tenant_id: UUID, site_id: UUID, camera_id: UUID) -> str:
    return f"{tenant_id}/{site_id}/{camera_id}/"


def tenant_prefix(tenant_id: UUID) -> str:
    return f"{tenant_id}/"


def require_camera_key(
    key: str, tenant_id: UUID, site_id: UUID, camera_id: UUID, field: str
) -> str:
    """``key`` if it is a safe key below the camera's own prefix; else 422 naming ``field``."""
    prefix = camera_prefix(tenant_id, site_id, camera_id)
    if not is_safe_key(key) or not key.startswith(prefix) or key == prefix:
        raise InvalidInput(
            f"snapshot key must be an object below {prefix} (the event's own camera)",
            field=field,
        )
    return key


def keys_of_tenant(keys: list[str], tenant_id: UUID) -> tuple[list[str], list[str]]:
    """Split ``keys`` into those that may be deleted for ``tenant_id`` and those that may not."""
    prefix = tenant_prefix(tenant_id)
    mine = sorted(k for k in keys if is_safe_key(k) and k.startswith(prefix))
    foreign = sorted(k for k in keys if k not in set(mine))
    return mine, foreign
