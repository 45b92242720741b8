"""`make demo`: the embedded stack, the migrations, every function behind the gateway, and a
walk through the API as a system admin, a tenant admin and a store's edge worker would use it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import httpx

from visitlens.adapters.db import migrate
from visitlens.adapters.endpoints import database_dsns
from visitlens.adapters.model_prep import prepare
from visitlens.config import Settings
from visitlens.errors import Conflict, StackError
from visitlens.wiring import create_system_admin
from visitlens_dev.runtime.runner import function_env
from visitlens_dev.stack import manager
from visitlens_dev.stack.processes import require_free_ports, terminate, wait_until

ADMIN_EMAIL = "demo-admin@example.com"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _admin_password(settings: Settings) -> tuple[str, bool]:
    """The demo admin's password, kept in a 0600 file under the data dir (never printed)."""
    path = settings.data_dir / "demo-admin.json"
    if path.exists():
        return str(json.loads(path.read_text())["password"]), False
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"email": ADMIN_EMAIL, "password": password}, handle)
    return password, True


def run_demo(settings: Settings) -> int:
    started = time.monotonic()
    _say("1. embedded stack (PostgreSQL 16, Milvus Lite, SeaweedFS S3) ...")
    manager.up(settings)
    for s in manager.status(settings):
        _say(f"   {s.name:<9} {'healthy' if s.healthy else 'DOWN':<8} {s.detail}")
    _say("2. migrations (owner role) and the app role (row-level security applies) ...")
    owner_dsn, _ = database_dsns(settings)
    migrate.upgrade(owner_dsn, settings)
    password, fresh = _admin_password(settings)
    if fresh:
        try:
            asyncio.run(create_system_admin(settings, ADMIN_EMAIL, password))
        except Conflict:
            raise StackError(
                f"{ADMIN_EMAIL} exists but {settings.data_dir}/demo-admin.json was lost; "
                "run `make clean` and try again"
            ) from None
    _say(f"   system admin {ADMIN_EMAIL} (password in {settings.data_dir}/demo-admin.json)")
    if not (settings.models_dir / "manifest.json").exists():
        for prepared in prepare(settings.models_dir):
            _say(f"   model {prepared.model_id}: sha256 {prepared.sha256[:16]}… (checked original)")

    _say("3. functions behind the local gateway (functions-framework --asgi per function) ...")
    host, port = settings.stack.host, settings.stack.gateway_port
    require_free_ports(host, {"gateway": port})
    log = (settings.data_dir / "logs" / "dev.log").resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "visitlens.cli", "dev"],
            env=function_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://{host}:{port}"
    try:
        wait_until("gateway", lambda: _healthy(base), timeout_s=60, pid=proc.pid, log_path=log)
        _say(f"   gateway {base}")
        world = _walkthrough(base, password)
        from visitlens_dev.edge_demo import run_edge

        run_edge(settings, base, world)
        _console(settings, base, world)
    finally:
        terminate("visitlens dev", proc.pid)
    _say(f"demo finished in {time.monotonic() - started:.1f}s; `make dev` keeps it running")
    return 0


def _console(settings: Settings, base: str, world: dict[str, Any]) -> None:
    """The web console on the same gateway: the demo tenant's own admin signs in to it (a system
    admin would first choose a tenant); the password goes to a 0600 file, never to the screen."""
    _say("8. web console")
    index = httpx.get(base + "/", timeout=10)
    if index.status_code != 200 or '<div id="root">' not in index.text:
        _say("   not built here (`make web` builds it; `make demo` does so first)")
        return
    email = f"owner@{world['slug']}.example.com"
    password = secrets.token_urlsafe(18)
    root = {"authorization": f"Bearer {world['root']}"}
    user = {"email": email, "role": "tenant_admin", "password": password,
            "display_name": "Demo owner"}  # fmt: skip
    created = httpx.post(f"{base}/v1/tenants/{world['tenant_id']}/users", headers=root,
                         json=user, timeout=30)  # fmt: skip
    login = {"grant_type": "password", "email": email, "password": password}
    grant = httpx.post(f"{base}/v1/auth/token", json=login, timeout=30)
    if created.status_code != 201 or grant.status_code != 200:
        raise StackError(f"demo console sign-in failed: {created.status_code}/{grant.status_code}")
    path = settings.data_dir / "demo-console.json"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": base + "/", "email": email, "password": password}, handle)
    me = httpx.get(f"{base}/v1/auth/me", timeout=10,
                   headers={"authorization": f"Bearer {grant.json()['access_token']}"})  # fmt: skip
    _say(f"   {base}/ signed in as {email} ({me.json()['role']} of tenant {world['slug']})")
    _say(f"   password in {path}; `make dev` serves the console with this data after the demo")


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _walkthrough(base: str, admin_password: str) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=30) as http:

        def call(method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            return http.request(method, path, headers=headers, **kw)

        def ok(response: httpx.Response) -> dict[str, Any]:
            if response.is_error:
                raise StackError(
                    f"demo step {response.request.method} {response.request.url.path} failed: "
                    f"{response.status_code} {response.text[:500]}"
                )
            body: dict[str, Any] = response.json()
            return body

        _say("4. API walkthrough")
        login = {"grant_type": "password", "email": ADMIN_EMAIL, "password": admin_password}
        grant = ok(call("POST", "/v1/auth/token", json=login))
        root = grant["access_token"]
        _say(f"   system admin signed in (role {grant['role']}, expires in {grant['expires_in']}s)")

        slug = f"demo-{secrets.token_hex(3)}"
        tenant = ok(call("POST", "/v1/tenants", root, json={"slug": slug, "name": "Demo Retail"}))
        t = f"/v1/tenants/{tenant['id']}"
        site = ok(
            call("POST", f"{t}/sites", root, json={"name": "Mitte", "timezone": "Europe/Berlin"})
        )
        camera = ok(
            call("POST", f"{t}/sites/{site['id']}/cameras", root, json={"name": "Entrance"})
        )
        _say(
            f"   tenant {slug}: site '{site['name']}' ({site['timezone']}), camera '{camera['name']}'"
        )

        key_request = {
            "name": "edge Mac Mini",
            "role": "worker",
            "site_ids": [site["id"]],
            "camera_ids": [camera["id"]],
        }
        key = ok(call("POST", f"{t}/api-keys", root, json=key_request))
        exchange = {"grant_type": "api_key", "api_key": key["api_key"]}
        worker = ok(call("POST", "/v1/auth/token", json=exchange))["access_token"]
        me = ok(call("GET", "/v1/auth/me", worker))
        _say(
            f"   edge key {key['prefix']} -> token for role {me['role']} on {len(me['camera_ids'])} camera"
        )

        cams = ok(call("GET", f"{t}/sites/{site['id']}/cameras", worker))
        _say(f"   worker lists its cameras: {len(cams['items'])} item")
        denied = call("POST", f"{t}/sites", worker, json={"name": "x", "timezone": "UTC"})
        _say(f"   worker tries to create a site: {denied.status_code} {denied.json()['detail']}")
        anonymous = call("GET", f"{t}/sites")
        _say(f"   no token: {anonymous.status_code} {anonymous.json()['detail']}")
        bad_site = {"name": "", "timezone": "Mars/Olympus", "colour": "red"}
        bad = call("POST", f"{t}/sites", root, json=bad_site)
        fields = ", ".join(e["field"] for e in bad.json()["errors"])
        _say(f"   invalid site: {bad.status_code}, fields named: {fields}")
        doc = ok(call("GET", "/v1/openapi.json"))
        _say(f"   OpenAPI {doc['openapi']}: {len(doc['paths'])} paths")
        return {
            "root": root,
            "slug": slug,
            "tenant_id": tenant["id"],
            "site_id": site["id"],
            "camera_id": camera["id"],
            "api_key": key["api_key"],
        }


if __name__ == "__main__":
    from visitlens.config import load_settings

    raise SystemExit(run_demo(load_settings()))
