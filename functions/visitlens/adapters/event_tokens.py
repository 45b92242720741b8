"""Sender identity of CloudEvent deliveries: OIDC tokens as Knative Eventing sends them.

With Knative's ``authentication-oidc`` feature, a Broker/Trigger or a PingSource adds
``Authorization: Bearer <token>``: a Kubernetes service-account JWT issued for the subscriber's
audience (``Trigger.spec.subscriber.audience``). A function verifies the signature against the
issuer's JWK Set, the issuer, the audience, expiry, and optionally the sending service account.

The local gateway plays the same role with its own issuer (:class:`EventTokenIssuer`): a key in
the data directory, its JWK Set in a file next to it, tokens per delivery for the target's
audience. The verifier is the same code in both cases.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from visitlens.config import EventAuthSettings
from visitlens.errors import ConfigurationError, Unauthenticated

logger = logging.getLogger(__name__)

ALGORITHMS = ["RS256", "ES256"]
LOCAL_ISSUER = "visitlens-local-broker"
_KEY_FILE = "issuer.pem"
JWKS_FILE = "jwks.json"
MINIO_TOKEN_FILE = "minio-webhook-token"  # noqa: S105 - a file name


def function_audience(name: str) -> str:
    """The audience a delivery token names for the function ``name`` (the Trigger's
    ``subscriber.audience`` and the PingSource's ``sink.audience`` in the cluster)."""
    return f"visitlens-{name}"


def broker_audience(broker: str) -> str:
    """The audience a publisher's token names to post into ``broker`` (its ingress checks it)."""
    return f"eventing.knative.dev/broker/visitlens/{broker}"


class EventTokenVerifier:
    """Checks the bearer token of a delivery against the configured issuer and audience."""

    def __init__(self, settings: EventAuthSettings, audience: str) -> None:
        self._settings = settings
        self._audience = settings.audience or audience
        self._client = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None
        self._file_keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def audience(self) -> str:
        return self._audience

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of ``Authorization: Bearer <token>``; any failure is a 401."""
        if self._settings.issuer is None or (self._client is None and not self._settings.jwks_file):
            raise Unauthenticated("event deliveries are not accepted: no event issuer configured")
        token = _bearer(authorization)
        key = self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self._audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("delivery token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid delivery token: {type(exc).__name__}") from exc
        allowed = self._settings.allowed_subjects
        if allowed and claims["sub"] not in allowed:
            raise Unauthenticated("this sender may not deliver events here")
        return claims

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token).key
            except jwt.PyJWKClientError as exc:
                raise Unauthenticated(f"delivery token key unknown: {exc}") from exc
            except jwt.InvalidTokenError as exc:
                raise Unauthenticated("malformed delivery token") from exc
        try:
            kid = str(jwt.get_unverified_header(token).get("kid", ""))
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated("malformed delivery token") from exc
        with self._lock:
            if kid not in self._file_keys:  # first use, or the issuer rotated its key
                self._file_keys = _read_jwks(self._settings.jwks_file)
            key = self._file_keys.get(kid)
        if key is None:
            raise Unauthenticated("delivery token signed with an unknown key")
        return key


def _read_jwks(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        keys = jwt.PyJWKSet.from_json(path.read_text())
    except (OSError, jwt.PyJWKSetError) as exc:
        logger.warning("event JWK Set %s unreadable: %s", path.name, type(exc).__name__)
        return {}
    return {str(k.key_id): k.key for k in keys.keys}


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing delivery token (Authorization: Bearer …)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("expected 'Authorization: Bearer <token>'")
    return token.strip()


class EventTokenIssuer:
    """The local stand-in for the cluster's service-account issuer (dev and test only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        key_path = directory / _KEY_FILE
        if not key_path.exists():
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_private(key_path, pem)
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ConfigurationError(f"{key_path}: not an RSA private key")
        self._key = loaded
        public = RSAAlgorithm.to_jwk(loaded.public_key(), as_dict=True)
        self.kid = public["n"][:16]
        public.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        self.jwks_path = directory / JWKS_FILE
        published = json.dumps({"keys": [public]})
        if not self.jwks_path.exists() or self.jwks_path.read_text() != published:
            # atomically: function processes may be reading the file at this moment
            partial = directory / f".{JWKS_FILE}.{os.getpid()}"
            partial.write_text(published)
            partial.replace(self.jwks_path)
        token_path = directory / MINIO_TOKEN_FILE
        if not token_path.exists():
            _write_private(token_path, uuid.uuid4().hex.encode() + uuid.uuid4().hex.encode())
        self.minio_token = token_path.read_text().strip()

    def token(self, audience: str, subject: str, ttl_s: int = 300) -> str:
        now = int(time.time())
        claims = {
            "iss": LOCAL_ISSUER,
            "aud": audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def environment(self) -> dict[str, str]:
        """What a function process needs to verify this issuer's tokens."""
        return {
            "VISITLENS_EVENTS__ISSUER": LOCAL_ISSUER,
            "VISITLENS_EVENTS__JWKS_FILE": str(self.jwks_path),
        }


def _write_private(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
