"""Every operation of docs/openapi.json fuzzed with schemathesis against the real functions behind
`visitlens dev` (the gateway, its Broker and MinIO webhook included), as a system admin and as a
tenant admin: no server error and no response that breaks its documented schema. A fixed seed
(derandomize) and a bounded number of examples keep it repeatable and inside the CI budget."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import PASSWORD, REPO, DevServer
from visitlens.config import Settings, load_settings
from visitlens.wiring import create_system_admin
from visitlens_dev.runtime.runner import local_issuer

pytestmark = pytest.mark.integration

EXAMPLES = 6
# The live monitor is an endless Server-Sent-Events stream (tests/integration/test_monitor.py).
schema = schemathesis.openapi.from_dict(
    json.loads((REPO / "docs" / "openapi.json").read_text())
).exclude(path_regex=r".*/monitor$")


@pytest.fixture(scope="module")
def fuzz_world(
    dev_server: DevServer, function_environment: None, stack_settings: Settings
) -> dict[str, Any]:
    """A system admin, a tenant with a site and a camera, its admin and worker; the Broker's and
    the MinIO webhook's credentials — all made through the running platform."""
    email = f"fuzz-root-{uuid.uuid4().hex[:8]}@example.com"
    asyncio.run(create_system_admin(load_settings(), email, PASSWORD))
    http = httpx.Client(base_url=dev_server.base, timeout=60)

    def token(body: dict[str, str]) -> str:
        response = http.post("/v1/auth/token", json=body)
        assert response.status_code == 200, response.text
        value: str = response.json()["access_token"]
        return value

    root = token({"grant_type": "password", "email": email, "password": PASSWORD})
    h = {"authorization": f"Bearer {root}"}
    slug = f"fuzz-{uuid.uuid4().hex[:8]}"
    tenant = http.post("/v1/tenants", headers=h, json={"slug": slug, "name": slug}).json()["id"]
    site = http.post(f"/v1/tenants/{tenant}/sites", headers=h,
                     json={"name": "S", "timezone": "Europe/Berlin"}).json()["id"]  # fmt: skip
    camera = http.post(f"/v1/tenants/{tenant}/sites/{site}/cameras", headers=h,
                       json={"name": "C"}).json()["id"]  # fmt: skip
    admin_email = f"admin-{slug}@example.com"
    created = http.post(f"/v1/tenants/{tenant}/users", headers=h,
                        json={"email": admin_email, "role": "tenant_admin", "password": PASSWORD})  # fmt: skip
    assert created.status_code == 201, created.text
    key = http.post(f"/v1/tenants/{tenant}/api-keys", headers=h, json={
        "name": "edge", "role": "worker", "site_ids": [site], "camera_ids": [camera]}).json()  # fmt: skip
    issuer = local_issuer(stack_settings)
    return {
        "tenant_id": tenant, "site_id": site, "camera_id": camera,
        "tokens": {
            "system_admin": root,
            "tenant_admin": token({"grant_type": "password", "email": admin_email, "password": PASSWORD}),
        },
        "worker": token({"grant_type": "api_key", "api_key": key["api_key"]}),
        "publisher": issuer.token("eventing.knative.dev/broker/visitlens/default", "fuzz", 3600),
        "webhook": issuer.minio_token,
        "base": dev_server.base,
    }  # fmt: skip


def credentials(case: Any, world: dict[str, Any], role: str) -> dict[str, str]:
    if case.path == "/brokers/{broker}":
        return {"authorization": f"Bearer {world['publisher']}"}
    if case.path == "/minio/events":
        return {"authorization": f"Bearer {world['webhook']}"}
    if case.path == "/v1/events":
        return {"authorization": f"Bearer {world['worker']}"}
    return {"authorization": f"Bearer {world['tokens'][role]}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # a fixed seed: the same cases on every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_schema(
    case: Any, fuzz_world: dict[str, Any]
) -> None:
    for name in ("tenant_id", "site_id", "camera_id"):  # the fuzz tenant's own, to get deep
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = fuzz_world[name]
    for role in ("system_admin", "tenant_admin"):
        case.call_and_validate(
            base_url=fuzz_world["base"],
            headers=credentials(case, fuzz_world, role),
            checks=[not_a_server_error, response_schema_conformance],
            timeout=30,
        )
