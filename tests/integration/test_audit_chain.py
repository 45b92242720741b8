"""The audit log is tamper-evident: concurrent audited writes form one valid chain per tenant,
and `visitlens audit verify` finds a row edited or deleted behind the application's back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import asyncpg
import httpx
import pytest

from tests.conftest import TenantWorld
from visitlens.adapters.endpoints import database_dsns
from visitlens.config import Settings
from visitlens.wiring import verify_audit_chains
from visitlens_dev.runtime.runner import function_env

pytestmark = pytest.mark.integration


def chain_of(reports: list, tenant: str):  # type: ignore[no-untyped-def, type-arg]
    return next(r for r in reports if r.chain == tenant)


async def test_chain_survives_concurrency_and_detects_edits_and_deletions(
    api_client: httpx.AsyncClient, world: TenantWorld, stack_settings: Settings
) -> None:
    t = f"/v1/tenants/{world.tenant_id}/sites/{world.site_a}/cameras"
    responses = await asyncio.gather(*(
        api_client.post(t, headers=world.auth(world.admin), json={"name": f"cam-{i}"})
        for i in range(12)
    ))  # fmt: skip
    assert all(r.status_code == 201 for r in responses)
    owner_dsn, _ = database_dsns(stack_settings)
    clean = chain_of(await verify_audit_chains(stack_settings), world.tenant_id)
    assert clean.problems == [] and clean.rows >= 12

    owner = await asyncpg.connect(owner_dsn)
    try:
        async with owner.transaction():
            await owner.execute("SELECT set_config('app.tenant_id', $1, true)", world.tenant_id)
            await owner.execute(
                "UPDATE audit_log SET details = '{\"forged\": true}' WHERE tenant_id = $1 AND seq = 3",
                uuid.UUID(world.tenant_id),
            )
        edited = chain_of(await verify_audit_chains(stack_settings), world.tenant_id)
        assert any(p.startswith("edited: seq 3") for p in edited.problems)
        async with owner.transaction():
            await owner.execute("SELECT set_config('app.tenant_id', $1, true)", world.tenant_id)
            await owner.execute(
                "DELETE FROM audit_log WHERE tenant_id = $1 AND seq = 5", uuid.UUID(world.tenant_id)
            )
        deleted = chain_of(await verify_audit_chains(stack_settings), world.tenant_id)
        assert any(p.startswith("missing: seq 5") for p in deleted.problems)
        # the operator's command says so too, with a non-zero exit
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "visitlens.cli", "audit", "verify"],
            env=function_env(stack_settings), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert f"{world.tenant_id}" in result.stdout and "edited: seq 3" in result.stdout
    finally:
        await owner.close()
