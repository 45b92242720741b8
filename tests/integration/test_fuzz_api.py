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
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
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
    return make_fuzz_world(dev_server, stack_settings)


@pytest.fixture(scope="module")
def event_world(
    dev_server: DevServer, function_environment: None, stack_settings: Settings
) -> dict[str, Any]:
    """A tenant of its own for the generated events: the operation fuzzer deletes and changes
    the fuzz tenant's sites and cameras (their ids are put into its paths)."""
    return make_fuzz_world(dev_server, stack_settings)


def make_fuzz_world(dev_server: DevServer, stack_settings: Settings) -> dict[str, Any]:
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


# One pytest item per operation, each with its own id: schemathesis' own `schema.parametrize()`
# gives every item the same node id under pytest 9, and pytest-xdist (make test) keeps one item
# per id, so 65 of the 68 operations were silently never fuzzed.
def _operations() -> list[Any]:
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # a broken operation in docs/openapi.json fails the module
            raise result.err()
        operations.append(result.ok())
    return operations


OPERATIONS = _operations()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # a fixed seed: the same cases on every run
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_server_errors_and_responses_match_the_schema(
    operation: Any, fuzz_world: dict[str, Any], data: st.DataObject
) -> None:
    # valid and invalid requests both, as schemathesis' default generation modes do
    case = data.draw(st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode)))
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


# --- events generated from their JSON Schemas ------------------------------------------------

FACE_TYPES = ("face.detected.v1", "face.detected.v2", "face.detected.v3")


def _event_data(name: str) -> Any:
    """``data`` of a face.detected event as its committed JSON Schema allows it, generated by
    schemathesis (its JSON Schema strategies: hypothesis-jsonschema 0.23 no longer runs on this
    hypothesis), paired with whether to place it deep (see :func:`_placed`)."""
    from hypothesis import strategies as st

    raw = json.loads((REPO / "events" / f"{name}.schema.json").read_text())
    body = {k: v for k, v in raw.items() if k not in ("$id", "$schema")}
    operation = schemathesis.openapi.from_dict({
        "openapi": "3.1.0", "info": {"title": name, "version": "1"},
        "paths": {f"/{name}": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "the data as its schema allows it"}},
        }}},
    })[f"/{name}"]["POST"]  # fmt: skip
    return st.tuples(operation.as_strategy(), st.booleans()).map(
        lambda pair: (name, pair[0].body, pair[1])
    )


def _placed(name: str, generated: Any, deep: bool, world: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    data = generated if isinstance(generated, dict) else {"value": generated}
    data = {**data, "tenant_id": world["tenant_id"], "site_id": world["site_id"],
            "camera_id": world["camera_id"]}  # fmt: skip
    if deep:
        rng = np.random.default_rng(len(json.dumps(data)))

        def unit() -> list[float]:
            v = rng.normal(size=128)
            return [round(float(x), 7) for x in v / np.linalg.norm(v)]

        if "shots" in data:
            data["shots"] = [{**s, "embedding": unit()} for s in data["shots"]]
            data.update(model_id="sface-2021dec", dim=128)
        else:
            data["embedding"] = unit()
    return {
        "specversion": "1.0", "id": f"fuzz-{uuid.uuid4()}", "type": f"com.visitlens.{name}",
        "source": f"/tenants/{world['tenant_id']}/sites/{world['site_id']}/cameras/"
                  f"{world['camera_id']}",
        "datacontenttype": "application/json", "data": data,
    }  # fmt: skip


def _events() -> Any:
    from hypothesis import strategies as st

    return st.one_of(*(_event_data(name) for name in FACE_TYPES))


@pytest.mark.parametrize("shape", ["single", "batch"])
def test_events_from_their_schemas_never_get_a_server_error(
    shape: str, event_world: dict[str, Any]
) -> None:
    """Any face.detected event its schema admits (times from year 1 to 9999 with any offset,
    boxes, qualities, demographics, keys): a 2xx or a 4xx naming the problem, never a 5xx —
    alone, and in a batch beside a valid event, which still counts."""
    from hypothesis import given

    headers = {"authorization": f"Bearer {event_world['worker']}"}
    http = httpx.Client(base_url=event_world["base"], timeout=60)

    @settings(
        max_examples=30, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(generated=_events())
    def check(generated: tuple[str, dict[str, Any], bool]) -> None:
        event = _placed(*generated, world=event_world)
        if shape == "single":
            response = http.post(
                "/v1/events", content=json.dumps(event),
                headers={**headers, "content-type": "application/cloudevents+json"},
            )  # fmt: skip
            assert response.status_code < 500, response.text
            return
        response = http.post(
            "/v1/events", content=json.dumps([event, _valid_neighbour(event_world)]),
            headers={**headers, "content-type": "application/cloudevents-batch+json"},
        )  # fmt: skip
        assert response.status_code == 200, response.text
        first, neighbour = response.json()["results"]
        assert first["status"] < 500, first
        assert neighbour["status"] == 200, neighbour

    check()


def _valid_neighbour(world: dict[str, Any]) -> dict[str, Any]:
    """The golden face.detected.v2 example, an hour ago, with a face of its own."""
    from datetime import UTC, datetime, timedelta

    data = json.loads((REPO / "events" / "examples" / "face.detected.v2.json").read_text())["data"]
    start = datetime.now(UTC) - timedelta(hours=1)
    data.update(first_seen=start.isoformat(), last_seen=(start + timedelta(seconds=8)).isoformat(),
                track_id=f"fuzz:{uuid.uuid4().hex[:8]}", snapshot_key=None)  # fmt: skip
    for n, shot in enumerate(data["shots"]):
        shot["ts"] = (start + timedelta(seconds=n + 1)).isoformat()
    return _placed("face.detected.v2", data, True, world)
