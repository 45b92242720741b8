"""RS256 signing keys with ``kid`` and rotation, read from PEM files; token encode/verify via PyJWT.

``keys_dir`` holds ``<kid>.pem`` private keys: the active one signs (``active_kid``, else the newest
file), all of them verify. ``public_keys_dir`` may hold ``<kid>.pub.pem`` keys that are still
accepted after their private half was retired. A dev keypair is generated on first run in dev/test.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cachetools import LRUCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from visitlens.config import AuthSettings, Environment
from visitlens.errors import ConfigurationError, Unauthenticated

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
_KEY_BITS = 3072
VERIFIED_TOKENS = 8192
"""Tokens whose signature and claims were checked, remembered (least recently used dropped first)
so a sender's every request does not pay the RS256 check again: under ingest load it was a
twentieth of the function's CPU (py-spy). Expiry is checked again on every use; a signature's
validity cannot change while the key ring is loaded."""


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    private: rsa.RSAPrivateKey | None
    public: rsa.RSAPublicKey


class KeyRing:
    """Signs with one key, verifies with all; loaded once per warm instance."""

    def __init__(self, keys: list[_Key], active_kid: str, settings: AuthSettings) -> None:
        self._keys = {k.kid: k for k in keys}
        self._active = self._keys[active_kid]
        self._settings = settings
        self._verified: LRUCache[tuple[str, str], dict[str, Any]] = LRUCache(VERIFIED_TOKENS)
        self._verified_lock = threading.Lock()

    @property
    def active_kid(self) -> str:
        return self._active.kid

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    @classmethod
    def load(cls, keys_dir: Path, settings: AuthSettings, env: Environment) -> KeyRing:
        if not any(keys_dir.glob("*.pem")) and env is not Environment.PROD:
            generate_key(keys_dir, f"dev-{time.strftime('%Y%m%d')}")
        keys: list[_Key] = []
        private_files = sorted(
            (p for p in keys_dir.glob("*.pem") if not p.name.endswith(".pub.pem")),
            key=lambda p: p.stat().st_mtime,
        )
        for path in private_files:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ConfigurationError(f"{path.name}: not an RSA private key")
            keys.append(_Key(path.stem, private, private.public_key()))
        public_dirs = [keys_dir] + ([settings.public_keys_dir] if settings.public_keys_dir else [])
        known = {k.kid for k in keys}
        for directory in public_dirs:
            for path in sorted(directory.glob("*.pub.pem")):
                kid = path.name.removesuffix(".pub.pem")
                if kid in known:
                    continue
                public = serialization.load_pem_public_key(path.read_bytes())
                if not isinstance(public, rsa.RSAPublicKey):
                    raise ConfigurationError(f"{path.name}: not an RSA public key")
                keys.append(_Key(kid, None, public))
                known.add(kid)
        if not private_files:
            raise ConfigurationError(f"no signing key (<kid>.pem) in {keys_dir}")
        active = settings.active_kid or private_files[-1].stem
        if active not in {p.stem for p in private_files}:
            raise ConfigurationError(f"active_kid {active!r} has no private key in {keys_dir}")
        logger.info("loaded %d signing/verification keys, active kid=%s", len(keys), active)
        return cls(keys, active, settings)

    def encode(self, claims: dict[str, Any]) -> str:
        assert self._active.private is not None
        return jwt.encode(
            claims, self._active.private, algorithm=ALGORITHM, headers={"kid": self._active.kid}
        )

    def decode(self, token: str, *, token_type: str) -> dict[str, Any]:
        """Verify signature, kid, issuer, audience, expiry and type; any failure is a 401."""
        with self._verified_lock:
            known = self._verified.get((token_type, token))
        if known is not None:
            if time.time() > known["exp"] + self._settings.leeway_s:
                raise Unauthenticated("token expired")
            return dict(known)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("malformed token") from exc
        key = self._keys.get(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("token signed with an unknown key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {type(exc).__name__}") from exc
        if claims.get("typ") != token_type:
            raise Unauthenticated(f"not an {token_type} token")
        with self._verified_lock:
            self._verified[(token_type, token)] = dict(claims)
        return claims

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Public keys as a JWK Set, for other services (and the edge) to verify tokens offline."""
        out = []
        for key in self._keys.values():
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public, as_dict=True)
            jwk.update({"kid": key.kid, "use": "sig", "alg": ALGORITHM})
            out.append(jwk)
        return {"keys": out}


def generate_key(keys_dir: Path, kid: str) -> Path:
    """Write a new RSA private key ``<kid>.pem`` (mode 0600). Used for dev keys and rotation."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / f"{kid}.pem"
    if path.exists():
        raise ConfigurationError(f"key {kid!r} already exists in {keys_dir}")
    private = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    logger.info("generated signing key kid=%s in %s", kid, keys_dir)
    return path
