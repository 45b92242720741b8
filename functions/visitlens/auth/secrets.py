"""Opaque credentials: API keys and refresh tokens. High-entropy, so stored as SHA-256 digests.

Format ``<kind>_<public id>_<secret>``: the public id finds the row, the secret proves possession.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from visitlens.errors import Unauthenticated

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
