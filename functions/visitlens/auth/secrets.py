"""Opaque credentials: API keys and refresh tokens. High-entropy, so stored as SHA-256 digests.

Format ``<kind>_<public id>_<secret>``: the public id finds the row, the secret proves possession.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from visitlens.errors import Unauthenticated

logger = logging.getLogger(__name__)

API_KEY_KIND = "vlk"
REFRESH_KIND = "vlr"
_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class OpaqueCredential:
    kind: str
    public_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.kind}_{self.public_id}_{self.secret}"

    @property
    def digest(self) -> bytes:
        return digest(self.secret)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def matches(secret: str, stored_digest: bytes) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)


def new_api_key() -> OpaqueCredential:
    return OpaqueCredential(
        API_KEY_KIND, secrets.token_hex(8), secrets.token_urlsafe(_SECRET_BYTES)
    )


def new_refresh_token(token_id: str) -> OpaqueCredential:
    return OpaqueCredential(REFRESH_KIND, token_id, secrets.token_urlsafe(_SECRET_BYTES))


def parse(value: str, kind: str) -> OpaqueCredential:
    """Split a presented credential; anything malformed is simply unauthenticated."""
    parts = value.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != kind or not parts[1] or not parts[2]:
        raise Unauthenticated(f"malformed {'API key' if kind == API_KEY_KIND else 'token'}")
    return OpaqueCredential(parts[0], parts[1], parts[2])


def shared_token_matches(authorization: str | None, expected: str) -> bool:
    """A static webhook token (MinIO's ``auth_token``), with or without the ``Bearer`` scheme,
    compared in constant time."""
    if not authorization or not expected:
        return False
    offered = authorization.strip()
    if offered.lower().startswith("bearer "):
        offered = offered[7:].strip()
    return hmac.compare_digest(offered.encode(), expected.encode())


def read_token_file(path: Path | None) -> str | None:
    """A token mounted as a file (a projected service-account token is rotated by the kubelet,
    so it is read at each use)."""
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        logger.warning("token file %s unreadable", path.name)
        return None
