"""Pure auth pieces: principals and scopes, opaque credentials, the JWT key ring and rotation."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from visitlens.adapters.jwt_keys import KeyRing, generate_key
from visitlens.adapters.passwords import hash_password, verify_password
from visitlens.auth import secrets as opaque
from visitlens.auth.principal import Principal, PrincipalKind, Role
from visitlens.config import AuthSettings, Environment
from visitlens.errors import ConfigurationError, Forbidden, Unauthenticated

SITE_A, SITE_B, CAM = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
TENANT = uuid.uuid4()


def principal(role: Role, **kw: object) -> Principal:
    return Principal(uuid.uuid4(), PrincipalKind.USER, role, TENANT, **kw)  # type: ignore[arg-type]


def test_role_and_scope_checks() -> None:
    admin = principal(Role.TENANT_ADMIN)
    manager = principal(Role.SITE_MANAGER, site_ids=frozenset({SITE_A}))
    worker = principal(Role.WORKER, site_ids=frozenset({SITE_A}), camera_ids=frozenset({CAM}))
    root = Principal(uuid.uuid4(), PrincipalKind.USER, Role.SYSTEM_ADMIN, None)

    admin.require_role(Role.TENANT_ADMIN)
    root.require_role(Role.TENANT_ADMIN)  # system admins pass every role check
    with pytest.raises(Forbidden):
        worker.require_role(Role.TENANT_ADMIN, Role.SITE_MANAGER)

    admin.require_site(SITE_B)
    manager.require_site(SITE_A)
    with pytest.raises(Forbidden):
        manager.require_site(SITE_B)
    worker.require_camera(SITE_A, CAM)
    with pytest.raises(Forbidden):
        worker.require_camera(SITE_A, uuid.uuid4())

    with pytest.raises(Forbidden):
        admin.require_tenant(uuid.uuid4())
    scope = root.db_scope(uuid.uuid4())
    assert scope.system_admin and scope.tenant_id is not None
    assert admin.db_scope(TENANT).tenant_id == TENANT and not admin.db_scope(TENANT).system_admin


def test_opaque_credentials_round_trip_and_reject_garbage() -> None:
    key = opaque.new_api_key()
    parsed = opaque.parse(str(key), opaque.API_KEY_KIND)
    assert parsed.public_id == key.public_id
    assert opaque.matches(parsed.secret, key.digest)
    assert not opaque.matches(parsed.secret + "x", key.digest)
    for bad in ("", "vlk_", "vlk__x", "vlr_a_b", "nope"):
        with pytest.raises(Unauthenticated):
            opaque.parse(bad, opaque.API_KEY_KIND)


def test_argon2_passwords() -> None:
    stored = hash_password("correct-horse-battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct-horse-battery")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "anything")  # unknown user: still a full verify, still False
    assert not verify_password("not-a-hash", "x")


def _claims(settings: AuthSettings, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": settings.issuer, "aud": settings.audience, "sub": str(uuid.uuid4()), "iat": now,
            "exp": now + 60, "typ": "access", **extra}  # fmt: skip


def test_keyring_generates_dev_key_and_verifies(tmp_path: Path) -> None:
    settings = AuthSettings()
    ring = KeyRing.load(tmp_path, settings, Environment.DEV)
    assert len(list(tmp_path.glob("*.pem"))) == 1
    assert (tmp_path / f"{ring.active_kid}.pem").stat().st_mode & 0o777 == 0o600
    token = ring.encode(_claims(settings))
    assert ring.decode(token, token_type="access")["typ"] == "access"
    with pytest.raises(Unauthenticated, match="not an refresh"):
        ring.decode(token, token_type="refresh")
    wrong_aud = ring.encode({**_claims(settings), "aud": "someone-else"})
    with pytest.raises(Unauthenticated):
        ring.decode(wrong_aud, token_type="access")
    expired = ring.encode({**_claims(settings), "exp": int(time.time()) - 3600})
    with pytest.raises(Unauthenticated, match="expired"):
        ring.decode(expired, token_type="access")
    jwks = ring.jwks()["keys"]
    assert jwks[0]["kid"] == ring.active_kid and "d" not in jwks[0]


def test_keyring_remembers_verified_tokens_but_checks_expiry_and_type_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AuthSettings(leeway_s=0)
    ring = KeyRing.load(tmp_path, settings, Environment.DEV)
    now = int(time.time())
    token = ring.encode({**_claims(settings), "exp": now + 60, "role": "worker"})
    claims = ring.decode(token, token_type="access")
    claims["role"] = "system_admin"  # a caller's copy: what is remembered stays as verified
    checks: list[str] = []
    real = jwt.decode

    def counted(*args: Any, **kwargs: Any) -> Any:
        checks.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted)
    assert ring.decode(token, token_type="access")["role"] == "worker"
    assert checks == []  # remembered: no second signature check
    with pytest.raises(Unauthenticated, match="not an refresh"):
        ring.decode(token, token_type="refresh")  # remembered per type
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthenticated):
        ring.decode(tampered, token_type="access")  # another string: verified afresh
    monkeypatch.setattr(time, "time", lambda: now + 61)
    with pytest.raises(Unauthenticated, match="expired"):
        ring.decode(token, token_type="access")  # remembered, and still expires on time


def test_keyring_rotation_keeps_old_tokens_valid(tmp_path: Path) -> None:
    settings = AuthSettings()
    generate_key(tmp_path, "k1")
    old_ring = KeyRing.load(tmp_path, settings, Environment.PROD)
    old_token = old_ring.encode(_claims(settings))
    time.sleep(0.01)
    generate_key(tmp_path, "k2")
    new_ring = KeyRing.load(tmp_path, settings, Environment.PROD)
    assert new_ring.active_kid == "k2" and new_ring.kids == ["k1", "k2"]
    assert new_ring.decode(old_token, token_type="access")
    pinned = KeyRing.load(tmp_path, AuthSettings(active_kid="k1"), Environment.PROD)
    assert pinned.active_kid == "k1"
    with pytest.raises(ConfigurationError):
        KeyRing.load(tmp_path, AuthSettings(active_kid="k9"), Environment.PROD)


def test_prod_never_generates_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no signing key"):
        KeyRing.load(tmp_path, AuthSettings(), Environment.PROD)
    assert list(tmp_path.iterdir()) == []
