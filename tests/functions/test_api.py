"""The `api` function through functions-framework's own ASGI app, against the real embedded stack:
auth (401 vs 403), CRUD with role checks, pagination, bad input (4xx naming the field, nothing
written) and the OpenAPI document."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import PASSWORD, TenantWorld, make_world, ok, password_token
from visitlens.adapters.postgres import Database
from visitlens.ports import DbScope

pytestmark = pytest.mark.integration


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def count(db: Database, table: str, tenant_id: str) -> int:
    async with db.transaction(DbScope(uuid.UUID(tenant_id))) as conn:
        value: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return value


# --- meta ----------------------------------------------------------------------------------


async def test_health_is_public(api_client: httpx.AsyncClient) -> None:
    body = await ok(await api_client.get("/healthz"))
    assert body["status"] == "ok"


async def test_openapi_is_valid_and_matches_docs(api_client: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate

    from tests.conftest import REPO

    doc = await ok(await api_client.get("/v1/openapi.json"))
    validate(doc)
    committed = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert doc == committed, "docs/openapi.json is stale: run `make openapi`"
    assert "/v1/tenants/{tenant_id}/sites" in doc["paths"]


async def test_unknown_route_and_method(api_client: httpx.AsyncClient, world: TenantWorld) -> None:
    missing = await api_client.get("/v1/nothing-here", headers=auth(world.admin))
    assert missing.status_code == 404
    wrong = await api_client.put("/v1/tenants", headers=auth(world.root))
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"] and "POST" in wrong.headers["allow"]


# --- authentication: 401 ------------------------------------------------------------------


async def test_missing_and_malformed_tokens_are_401(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    path = f"/v1/tenants/{world.tenant_id}/sites"
    for headers in ({}, {"authorization": "Basic abc"}, auth("not-a-jwt"), auth("")):
        response = await api_client.get(path, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"


async def test_forged_expired_and_foreign_tokens_are_401(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    path = f"/v1/tenants/{world.tenant_id}/sites"
    claims = jwt.decode(world.admin, options={"verify_signature": False})
    header = jwt.get_unverified_header(world.admin)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": header["kid"]})
    unknown_kid = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "nope"})
    tampered = world.admin[:-4] + ("AAAA" if not world.admin.endswith("AAAA") else "BBBB")
    none_alg = jwt.encode({**claims, "role": "system_admin"}, key="", algorithm="none")
    for token in (forged, unknown_kid, tampered, none_alg):
        response = await api_client.get(path, headers=auth(token))
        assert response.status_code == 401, response.text


async def test_expired_token_is_401(
    api_client: httpx.AsyncClient, world: TenantWorld, stack_settings: Any
) -> None:
    from visitlens.adapters.jwt_keys import KeyRing

    keys = KeyRing.load(stack_settings.keys_dir, stack_settings.auth, stack_settings.env)
    claims = jwt.decode(world.admin, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 3600, nbf=int(time.time()) - 3600)
    claims["exp"] = int(time.time()) - 120
    expired = keys.encode(claims)
    response = await api_client.get(f"/v1/tenants/{world.tenant_id}/sites", headers=auth(expired))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_password_grant_failures(api_client: httpx.AsyncClient, world: TenantWorld) -> None:
    bad = [
        {"grant_type": "password", "email": "nobody@example.com", "password": "x" * 12},
        {"grant_type": "password", "email": "admin-x@example.com", "password": "wrong" * 3},
    ]
    for body in bad:
        response = await api_client.post("/v1/auth/token", json=body)
        assert response.status_code == 401
        assert response.json()["detail"] == "unknown e-mail or wrong password"
    unknown_grant = await api_client.post("/v1/auth/token", json={"grant_type": "magic"})
    assert unknown_grant.status_code == 422


async def test_refresh_rotates_and_reuse_revokes_the_family(
    api_client: httpx.AsyncClient, db: Database
) -> None:
    world = await make_world(db, api_client)
    email = await _admin_email(db, world)
    first = await ok(
        await api_client.post(
            "/v1/auth/token", json={"grant_type": "password", "email": email, "password": PASSWORD}
        )
    )
    second = await ok(
        await api_client.post(
            "/v1/auth/token",
            json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        )
    )
    assert second["refresh_token"] != first["refresh_token"]
    await ok(await api_client.get("/v1/auth/me", headers=auth(second["access_token"])))

    replay = await api_client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert replay.status_code == 401
    # The replay revoked the family: the legitimately rotated token is dead too.
    after = await api_client.post(
        "/v1/auth/token",
        json={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
    )
    assert after.status_code == 401
    # An access token is never accepted as a refresh token and vice versa.
    crossed = await api_client.get("/v1/auth/me", headers=auth(second["refresh_token"]))
    assert crossed.status_code == 401


async def _admin_email(db: Database, world: TenantWorld) -> str:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        email: str = await conn.fetchval(
            "SELECT email FROM users WHERE role = 'tenant_admin' LIMIT 1"
        )
    return email


async def test_api_key_grant_and_revocation(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    me = await ok(await api_client.get("/v1/auth/me", headers=auth(world.worker_a)))
    assert me["role"] == "worker"
    assert me["site_ids"] == [world.site_a] and me["camera_ids"] == [world.camera_a]

    wrong_secret = world.worker_key[:-3] + "xyz"
    for key in (wrong_secret, "vlk_nope_nope", "garbage"):
        response = await api_client.post(
            "/v1/auth/token", json={"grant_type": "api_key", "api_key": key}
        )
        assert response.status_code == 401

    keys = await ok(
        await api_client.get(f"/v1/tenants/{world.tenant_id}/api-keys", headers=auth(world.admin))
    )
    assert all("api_key" not in k and "secret_hash" not in k for k in keys["items"])
    key_id = keys["items"][0]["id"]
    revoked = await api_client.delete(
        f"/v1/tenants/{world.tenant_id}/api-keys/{key_id}", headers=auth(world.admin)
    )
    assert revoked.status_code == 204
    again = await api_client.post(
        "/v1/auth/token", json={"grant_type": "api_key", "api_key": world.worker_key}
    )
    assert again.status_code == 401 and "revoked" in again.json()["detail"]


# --- authorisation: 403 -------------------------------------------------------------------


async def test_roles_and_scopes_are_403(
    api_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    t = f"/v1/tenants/{world.tenant_id}"
    other = await make_world(db, api_client)
    cases = [
        ("POST", f"{t}/sites", world.worker_a, {"name": "x", "timezone": "UTC"}),
        ("GET", f"{t}/users", world.manager_a, None),
        ("GET", f"{t}/sites/{world.site_b}", world.manager_a, None),
        ("GET", f"{t}/sites/{world.site_b}/cameras", world.worker_a, None),
        ("GET", f"{t}/cameras/{world.camera_b}", world.worker_a, None),
        ("POST", "/v1/tenants", world.admin, {"slug": "zzz", "name": "z"}),
        ("GET", "/v1/tenants", world.admin, None),
        ("DELETE", t, world.admin, None),
        ("GET", f"/v1/tenants/{other.tenant_id}/sites", world.admin, None),
        ("GET", f"/v1/tenants/{other.tenant_id}", world.admin, None),
        ("PATCH", t, world.admin, {"active": False}),
        ("POST", f"{t}/api-keys", world.manager_a, {"name": "k", "role": "tenant_admin"}),
        (
            "POST",
            f"{t}/api-keys",
            world.manager_a,
            {"name": "k", "role": "worker", "site_ids": [world.site_b]},
        ),
    ]
    for method, path, token, body in cases:
        response = await api_client.request(method, path, headers=auth(token), json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["status"] == 403


async def test_site_manager_sees_only_its_sites(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    sites = await ok(
        await api_client.get(f"/v1/tenants/{world.tenant_id}/sites", headers=auth(world.manager_a))
    )
    assert [s["id"] for s in sites["items"]] == [world.site_a]
    everything = await ok(
        await api_client.get(f"/v1/tenants/{world.tenant_id}/sites", headers=auth(world.admin))
    )
    assert {s["id"] for s in everything["items"]} == {world.site_a, world.site_b}
    # A manager may issue worker keys for its own site.
    key = await api_client.post(
        f"/v1/tenants/{world.tenant_id}/api-keys",
        headers=auth(world.manager_a),
        json={"name": "till", "role": "worker", "site_ids": [world.site_a]},
    )
    assert key.status_code == 201


async def test_system_admin_reaches_every_tenant(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    tenants = await ok(await api_client.get("/v1/tenants?limit=500", headers=auth(world.root)))
    assert world.tenant_id in {t["id"] for t in tenants["items"]}
    sites = await ok(
        await api_client.get(f"/v1/tenants/{world.tenant_id}/sites", headers=auth(world.root))
    )
    assert len(sites["items"]) == 2


# --- CRUD ----------------------------------------------------------------------------------


async def test_site_camera_crud(api_client: httpx.AsyncClient, world: TenantWorld) -> None:
    t = f"/v1/tenants/{world.tenant_id}"
    h = auth(world.admin)
    site = await ok(
        await api_client.post(
            f"{t}/sites", headers=h, json={"name": "Zürich HB", "timezone": "Europe/Zurich"}
        ),
        201,
    )
    assert site["visit_window_s"] == 1800
    patched = await ok(
        await api_client.patch(f"{t}/sites/{site['id']}", headers=h, json={"visit_window_s": 900})
    )
    assert patched["visit_window_s"] == 900 and patched["name"] == "Zürich HB"
    duplicate = await api_client.post(
        f"{t}/sites", headers=h, json={"name": "Zürich HB", "timezone": "UTC"}
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["errors"] == [  # in words, never the constraint's name
        {"field": "body.name", "message": "a site with this name exists already"}
    ]
    camera = await ok(
        await api_client.post(
            f"{t}/sites/{site['id']}/cameras", headers=h, json={"name": "door", "kind": "usb"}
        ),
        201,
    )
    got = await ok(await api_client.get(f"{t}/cameras/{camera['id']}", headers=h))
    assert got["site_id"] == site["id"] and got["kind"] == "usb"
    disabled = await ok(
        await api_client.patch(f"{t}/cameras/{camera['id']}", headers=h, json={"enabled": False})
    )
    assert disabled["enabled"] is False
    assert (await api_client.delete(f"{t}/cameras/{camera['id']}", headers=h)).status_code == 204
    assert (await api_client.get(f"{t}/cameras/{camera['id']}", headers=h)).status_code == 404
    assert (await api_client.delete(f"{t}/sites/{site['id']}", headers=h)).status_code == 204
    assert (await api_client.get(f"{t}/sites/{site['id']}", headers=h)).status_code == 404


async def test_user_crud_never_returns_secrets(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    t = f"/v1/tenants/{world.tenant_id}"
    h = auth(world.admin)
    email = f"Manager.{uuid.uuid4().hex[:6]}@Example.com"
    user = await ok(
        await api_client.post(
            f"{t}/users",
            headers=h,
            json={"email": email, "role": "site_manager", "site_ids": [world.site_b],
                  "password": PASSWORD},
        ),
        201,
    )  # fmt: skip
    assert user["email"] == email.lower()
    assert "password" not in json.dumps(user) and "hash" not in json.dumps(user)
    token = await password_token(api_client, email.lower())
    me = await ok(await api_client.get("/v1/auth/me", headers=auth(token)))
    assert me["site_ids"] == [world.site_b]

    dup = await api_client.post(
        f"{t}/users", headers=h, json={"email": email, "role": "tenant_admin", "password": PASSWORD}
    )
    assert dup.status_code == 409 and "_key" not in dup.text
    assert dup.json()["errors"][0]["field"] == "body.email"
    bad_scope = await api_client.post(
        f"{t}/users",
        headers=h,
        json={"email": "x" + email, "role": "site_manager", "password": PASSWORD},
    )
    assert (
        bad_scope.status_code == 422 and bad_scope.json()["errors"][0]["field"] == "body.site_ids"
    )

    disabled = await ok(
        await api_client.patch(f"{t}/users/{user['id']}", headers=h, json={"disabled": True})
    )
    assert disabled["disabled"] is True
    login = await api_client.post(
        "/v1/auth/token",
        json={"grant_type": "password", "email": email.lower(), "password": PASSWORD},
    )
    assert login.status_code == 401
    assert (await api_client.delete(f"{t}/users/{user['id']}", headers=h)).status_code == 204


async def test_api_key_secret_is_shown_once(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    t = f"/v1/tenants/{world.tenant_id}"
    created = await ok(
        await api_client.post(
            f"{t}/api-keys",
            headers=auth(world.admin),
            json={"name": "door", "site_ids": [world.site_a], "camera_ids": [world.camera_a]},
        ),
        201,
    )
    assert created["api_key"].startswith(f"vlk_{created['prefix']}_")
    fetched = await ok(
        await api_client.get(f"{t}/api-keys/{created['id']}", headers=auth(world.admin))
    )
    assert "api_key" not in fetched
    foreign_camera = await api_client.post(
        f"{t}/api-keys",
        headers=auth(world.admin),
        json={"name": "x", "site_ids": [world.site_a], "camera_ids": [world.camera_b]},
    )
    assert foreign_camera.status_code == 422
    assert foreign_camera.json()["errors"][0]["field"] == "body.camera_ids"


async def test_pagination_walks_every_row_once(
    api_client: httpx.AsyncClient, world: TenantWorld
) -> None:
    t = f"/v1/tenants/{world.tenant_id}"
    h = auth(world.admin)
    for i in range(5):
        await ok(
            await api_client.post(
                f"{t}/sites", headers=h, json={"name": f"p{i}", "timezone": "UTC"}
            ),
            201,
        )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await ok(await api_client.get(f"{t}/sites", headers=h, params=params))
        seen += [s["id"] for s in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7 == len(set(seen))
    for bad in ({"limit": 0}, {"limit": 100000}, {"cursor": "!!"}, {"colour": "red"}):
        response = await api_client.get(f"{t}/sites", headers=h, params=bad)
        assert response.status_code == 422, bad
        assert response.json()["errors"][0]["field"].startswith("query.")


# --- bad input: a 4xx naming the field, nothing written -------------------------------------


async def test_bad_input_classes(
    api_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    path = f"/v1/tenants/{world.tenant_id}/sites"
    h = {**auth(world.admin), "content-type": "application/json"}
    before = await count(db, "sites", world.tenant_id)
    cases: list[tuple[bytes, dict[str, str], int, str | None]] = [
        (b'{"name": "x", "timezone": ', h, 400, None),
        (b"[1, 2]", h, 422, "body"),
        (b'{"name": "x", "timezone": "UTC", "extra": 1}', h, 422, "body.extra"),
        (b'{"name": 5, "timezone": "UTC"}', h, 422, "body.name"),
        (b'{"name": "x", "timezone": "Europe/Atlantis"}', h, 422, "body.timezone"),
        # 256+ characters: ZoneInfo itself fails (ENAMETOOLONG); the name is never handed to it
        (json.dumps({"name": "x", "timezone": "A" * 300}).encode(), h, 422, "body.timezone"),
        (
            json.dumps({"name": "x", "timezone": "../" * 40 + "etc/passwd"}).encode(),
            h,
            422,
            "body.timezone",
        ),
        (b'{"name": "x", "timezone": "UTC", "visit_window_s": 5}', h, 422, "body.visit_window_s"),
        (b'{"name": "x", "timezone": "UTC"}', {**h, "content-type": "text/plain"}, 415, None),
        (b"\xff\xfe", h, 400, None),
        (json.dumps({"name": "x" * 2_000_000, "timezone": "UTC"}).encode(), h, 413, None),
    ]
    for body, headers, status, field in cases:
        response = await api_client.post(path, headers=headers, content=body)
        assert response.status_code == status, (body[:60], response.text)
        problem = response.json()
        assert problem["status"] == status and problem["detail"]
        if field:
            assert field in {e["field"] for e in problem["errors"]}, problem
    # Every problem at once, not just the first.
    many = await api_client.post(path, headers=h, content=b'{"name": "", "timezone": 1, "x": 2}')
    assert {e["field"] for e in many.json()["errors"]} == {"body.name", "body.timezone", "body.x"}
    # a PATCH takes the same time zones (the probe's 256+ characters failed there too)
    site = (await api_client.get(path, headers=h)).json()["items"][0]["id"]
    response = await api_client.patch(f"{path}/{site}", headers=h, json={"timezone": "A" * 300})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body.timezone"
    # an API key that would have expired already is refused, not created
    keys = f"/v1/tenants/{world.tenant_id}/api-keys"
    for past in ("2020-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00"):
        response = await api_client.post(keys, headers=h, json={"name": "k", "expires_at": past})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "body.expires_at"
    assert await count(db, "sites", world.tenant_id) == before


async def test_mutations_are_audited(
    api_client: httpx.AsyncClient, db: Database, world: TenantWorld
) -> None:
    async with db.transaction(DbScope(uuid.UUID(world.tenant_id))) as conn:
        actions = [
            r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")
        ]
    assert {"site.create", "camera.create", "user.create", "api_key.create"} <= set(actions)


async def test_the_last_active_tenant_admin_cannot_remove_itself(
    api_client: httpx.AsyncClient, db: Database
) -> None:
    """The probe's fuzzer, a tenant admin, disabled and deleted its own account and locked the
    tenant out: the last active tenant admin can be neither disabled, demoted nor deleted (409
    with the reason); once another admin exists, it can."""
    world = await make_world(db, api_client)
    users = f"/v1/tenants/{world.tenant_id}/users"
    h = auth(world.admin)
    listed = (await api_client.get(users, headers=h)).json()["items"]
    me = next(u["id"] for u in listed if u["email"] == world.admin_email)
    for change in ({"disabled": True}, {"role": "site_manager", "site_ids": [world.site_a]}):
        response = await api_client.patch(f"{users}/{me}", headers=h, json=change)
        assert response.status_code == 409, response.text
        assert "last active tenant admin" in response.json()["detail"]
    response = await api_client.delete(f"{users}/{me}", headers=h)
    assert response.status_code == 409, response.text
    assert (await api_client.get(f"{users}/{me}", headers=h)).json()["disabled"] is False

    other = await api_client.post(users, headers=h, json={
        "email": f"second-{world.admin_email}", "role": "tenant_admin", "password": PASSWORD})  # fmt: skip
    assert other.status_code == 201, other.text
    assert (
        await api_client.patch(f"{users}/{me}", headers=h, json={"disabled": True})
    ).status_code == 200
