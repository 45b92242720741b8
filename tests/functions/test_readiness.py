"""GET /readyz on every function checks the dependencies it uses on the real stack; a failing one
makes it 503, named with its exception class only (never a message that could carry a DSN)."""

from __future__ import annotations

import pytest

from tests.conftest import function_clients
from visitlens.http import health
from visitlens_dev.runtime.spec import discover

pytestmark = pytest.mark.integration
USES = {
    "api": {"database", "object_store"},
    "ingest": {"database", "gallery"},
    "match": {"database", "gallery"},
    "enroll-staff": {"database", "gallery", "object_store"},
    "merge": {"database", "gallery", "object_store"},
    "erase": {"database", "gallery", "object_store"},
    "aggregate": {"database"},
    "purge": {"database", "object_store"},
}


async def test_every_function_is_ready_on_the_stack(function_environment: None) -> None:
    names = [spec.name for spec in discover()]
    assert set(names) == set(USES)
    async with function_clients(*names) as clients:
        for name, client in clients.items():
            response = await client.get("/readyz")
            assert response.status_code == 200, (name, response.text)
            body = response.json()
            assert body["status"] == "ready"
            assert body["checks"] == dict.fromkeys(USES[name], "ok"), name
            assert response.headers["cache-control"] == "no-store"
            live = await client.get("/healthz")  # liveness asks no dependency
            assert live.status_code == 200 and live.json()["status"] == "ok", name


async def test_a_failing_dependency_is_503_without_its_message() -> None:
    async def fine() -> None:
        return None

    async def down() -> None:
        raise ConnectionRefusedError("postgresql://app:secret@db:5432/visitlens refused")

    async def checks() -> dict[str, health.Check]:
        return {"database": down, "gallery": fine}

    response = await health.readiness(checks)
    assert response.status_code == 503
    body = bytes(response.body).decode()
    assert '"database":"failed (ConnectionRefusedError)"' in body and '"gallery":"ok"' in body
    assert "secret" not in body and "postgresql" not in body

    async def unbuildable() -> dict[str, health.Check]:
        raise OSError("milvus://10.0.0.1 unreachable")

    failed = await health.readiness(unbuildable)
    assert failed.status_code == 503 and b"failed (OSError)" in bytes(failed.body)
    assert b"10.0.0.1" not in bytes(failed.body)


def test_an_unanswered_check_times_out() -> None:
    import asyncio

    async def hangs() -> None:
        await asyncio.sleep(30)

    async def checks() -> dict[str, health.Check]:
        return {"gallery": hangs}

    response = asyncio.run(health.readiness(checks, timeout_s=0.05))
    assert response.status_code == 503 and b"TimeoutError" in bytes(response.body)
