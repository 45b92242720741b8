"""Token grants (password, API key, refresh token) and bearer-token verification.

Access tokens are short-lived RS256 JWTs checked without a database round trip. Refresh tokens are
opaque, stored as digests, rotated on every use; presenting a spent one revokes its whole family.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from visitlens.auth import secrets as opaque
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.config import AuthSettings
from visitlens.errors import Unauthenticated
from visitlens.ports import Connection, DbScope, PasswordHasher, Row, TokenCodec, Transactions

logger = logging.getLogger(__name__)

ACCESS = "access"


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    principal: Principal
    refresh_token: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - a scheme name


class AuthService:
    def __init__(
        self,
        db: Transactions,
        keys: TokenCodec,
        settings: AuthSettings,
        hasher: PasswordHasher,
    ) -> None:
        self._db = db
        self._keys = keys
        self._settings = settings
        self._hasher = hasher

    async def hash_password(self, password: str) -> str:
        """An argon2id hash, computed off the event loop."""
        return await self._hasher.hash(password)

    # --- verification -------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer …`` header, or 401.

        The signature proves who the token was issued to; one look-up proves that subject may
        still act (user not disabled, key not revoked, tenant active), so deactivation ends every
        token at once rather than when it expires."""
        principal = self.verify(authorization)
        if not await self.is_active(principal):
            raise Unauthenticated("account disabled or tenant deactivated")
        return principal

    async def is_active(self, principal: Principal) -> bool:
        active = await self._db.fetchval_unscoped(
            "SELECT auth_principal_active($1, $2)", principal.kind.value, principal.subject
        )
        return bool(active)

    def verify(self, authorization: str | None) -> Principal:
        """The principal a token was issued to (signature, expiry, claims); no database."""
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("expected 'Authorization: Bearer <token>'")
        claims = self._keys.decode(token.strip(), token_type=ACCESS)
        try:
            return Principal(
                subject=UUID(claims["sub"]),
                kind=PrincipalKind(claims["knd"]),
                role=Role(claims["role"]),
                tenant_id=UUID(claims["tid"]) if claims.get("tid") else None,
                site_ids=frozenset(UUID(s) for s in claims.get("sites", [])),
                camera_ids=frozenset(UUID(c) for c in claims.get("cams", [])),
            )
        except (KeyError, ValueError) as exc:
            raise Unauthenticated("token claims are incomplete") from exc

    def issue_access(self, principal: Principal) -> TokenGrant:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": str(principal.subject),
            "iat": now,
            "nbf": now,
            "exp": now + self._settings.access_ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": ACCESS,
            "knd": principal.kind.value,
            "role": principal.role.value,
            "tid": str(principal.tenant_id) if principal.tenant_id else None,
            "sites": sorted(str(s) for s in principal.site_ids),
            "cams": sorted(str(c) for c in principal.camera_ids),
        }
        return TokenGrant(self._keys.encode(claims), self._settings.access_ttl_s, principal)

    # --- grants -------------------------------------------------------------------------

    async def grant_password(self, email: str, password: str) -> TokenGrant:
        async with self._db.transaction(DbScope.none()) as conn:
            row = await conn.fetchrow("SELECT * FROM auth_find_user($1)", email)
        stored = row["password_hash"] if row is not None else None
        if not await self._hasher.verify(stored, password) or row is None:
            raise Unauthenticated("unknown e-mail or wrong password")
        if row["disabled"] or not row["tenant_active"]:
            raise Unauthenticated("account disabled")
        principal = _user_principal(row)
        family = uuid.uuid4()
        async with self._db.transaction(principal.db_scope(principal.tenant_id)) as conn:
            await conn.execute("UPDATE users SET last_login_at = now() WHERE id = $1", row["id"])
            if self._hasher.needs_rehash(row["password_hash"]):
                await conn.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1",
                    row["id"],
                    await self._hasher.hash(password),
                )
            refresh = await self._store_refresh(conn, principal, family)
        logger.info("password grant user=%s role=%s", principal.subject, principal.role)
        grant = self.issue_access(principal)
        return TokenGrant(grant.access_token, grant.expires_in, principal, refresh)

    async def grant_api_key(self, presented: str) -> TokenGrant:
        key = opaque.parse(presented, opaque.API_KEY_KIND)
        async with self._db.transaction(DbScope.none()) as conn:
            row = await conn.fetchrow("SELECT * FROM auth_find_api_key($1)", key.public_id)
        if row is None or not opaque.matches(key.secret, row["secret_hash"]):
            raise Unauthenticated("unknown or wrong API key")
        now = datetime.now(UTC)
        if row["revoked_at"] is not None or not row["tenant_active"]:
            raise Unauthenticated("API key revoked")
        if row["expires_at"] is not None and row["expires_at"] <= now:
            raise Unauthenticated("API key expired")
        principal = Principal(
            subject=row["id"],
            kind=PrincipalKind.API_KEY,
            role=Role(row["role"]),
            tenant_id=row["tenant_id"],
            site_ids=frozenset(row["site_ids"]),
            camera_ids=frozenset(row["camera_ids"]),
        )
        async with self._db.transaction(principal.db_scope(principal.tenant_id)) as conn:
            await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE id = $1", row["id"])
        logger.info("api-key grant key=%s role=%s", principal.subject, principal.role)
        return self.issue_access(principal)

    async def grant_refresh(self, presented: str) -> TokenGrant:
        token = opaque.parse(presented, opaque.REFRESH_KIND)
        try:
            token_id = UUID(hex=token.public_id)
        except ValueError as exc:
            raise Unauthenticated("malformed refresh token") from exc
        async with self._db.transaction(DbScope.none()) as conn:
            row = await conn.fetchrow("SELECT * FROM auth_find_refresh_token($1)", token_id)
        if row is None or not opaque.matches(token.secret, row["secret_hash"]):
            raise Unauthenticated("unknown refresh token")
        if row["expires_at"] <= datetime.now(UTC):
            raise Unauthenticated("refresh token expired")
        scope = DbScope(tenant_id=row["tenant_id"], system_admin=row["tenant_id"] is None)
        async with self._db.transaction(scope) as conn:
            spent = await conn.fetchval(
                "UPDATE refresh_tokens SET revoked_at = now() "
                "WHERE id = $1 AND revoked_at IS NULL RETURNING id",
                token_id,
            )
            if spent is None:
                await conn.execute(
                    "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) "
                    "WHERE family_id = $1",
                    row["family_id"],
                )
                logger.warning("refresh token reuse: family=%s revoked", row["family_id"])
                reuse = True
            else:
                reuse = False
                user = await conn.fetchrow(
                    "SELECT u.id, u.tenant_id, u.role, u.site_ids, u.disabled FROM users u "
                    "WHERE u.id = $1",
                    row["user_id"],
                )
                active = row["tenant_id"] is None or await conn.fetchval(
                    "SELECT active FROM tenants WHERE id = $1", row["tenant_id"]
                )
                if user is None or user["disabled"] or not active:
                    raise Unauthenticated("account disabled or tenant deactivated")
                principal = _user_principal(user)
                refresh = await self._store_refresh(conn, principal, row["family_id"])
                await conn.execute(
                    "UPDATE refresh_tokens SET replaced_by = $2 WHERE id = $1",
                    token_id,
                    UUID(hex=opaque.parse(refresh, opaque.REFRESH_KIND).public_id),
                )
        if reuse:
            raise Unauthenticated("refresh token already used; its session was revoked")
        grant = self.issue_access(principal)
        return TokenGrant(grant.access_token, grant.expires_in, principal, refresh)

    async def revoke_refresh(self, presented: str) -> None:
        """Sign-out: the presented refresh token's whole family is revoked (every rotation of
        this session). An unknown or malformed token changes nothing: signing out twice is
        fine."""
        try:
            token = opaque.parse(presented, opaque.REFRESH_KIND)
            token_id = UUID(hex=token.public_id)
        except (Unauthenticated, ValueError):
            return
        async with self._db.transaction(DbScope.none()) as conn:
            row = await conn.fetchrow("SELECT * FROM auth_find_refresh_token($1)", token_id)
        if row is None or not opaque.matches(token.secret, row["secret_hash"]):
            return
        scope = DbScope(tenant_id=row["tenant_id"], system_admin=row["tenant_id"] is None)
        async with self._db.transaction(scope) as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) "
                "WHERE family_id = $1",
                row["family_id"],
            )
        logger.info("sign-out: refresh family=%s revoked", row["family_id"])

    async def _store_refresh(self, conn: Connection, principal: Principal, family: UUID) -> str:
        token_id = uuid.uuid4()
        credential = opaque.new_refresh_token(token_id.hex)
        expires = datetime.now(UTC) + timedelta(seconds=self._settings.refresh_ttl_s)
        await conn.execute(
            "INSERT INTO refresh_tokens (id, tenant_id, user_id, family_id, secret_hash, "
            "expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            token_id,
            principal.tenant_id,
            principal.subject,
            family,
            credential.digest,
            expires,
        )
        return str(credential)


def _user_principal(row: Row) -> Principal:
    return Principal(
        subject=row["id"],
        kind=PrincipalKind.USER,
        role=Role(row["role"]),
        tenant_id=row["tenant_id"],
        site_ids=frozenset(row["site_ids"]),
    )
