"""The one-machine function host: real functions-framework processes behind the gateway, driven
through its Broker, PingSource, MinIO-webhook and HTTP ingress paths; and `visitlens dev` as a user
runs it, with an authenticated curl-equivalent to the CRUD API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from tests.conftest import REPO, system_admin_token
from visitlens.adapters.postgres import Database
from visitlens.config import Settings
from visitlens_dev.runtime.gateway import DeliveryPolicy, Gateway
from visitlens_dev.runtime.runner import function_env, local_issuer, running_functions
from visitlens_dev.runtime.spec import discover
from visitlens_dev.stack.processes import terminate, wait_until

pytestmark = pytest.mark.integration

FIXTURES = REPO / "tests" / "fixtures" / "functions"


@pytest.fixture(scope="module")
def echo_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("echo") / "deliveries.jsonl"
    path.touch()
    os.environ["ECHO_LOG"] = str(path)
    yield path
    os.environ.pop("ECHO_LOG", None)


@pytest.fixture(scope="module")
def fixture_functions(
    stack_settings: Settings, endpoints: Any, echo_log: Path
) -> Iterator[list[Any]]:
    with running_functions(stack_settings, discover(FIXTURES)) as deployed:
        yield deployed


@pytest.fixture
async def gateway(
    fixture_functions: list[Any], stack_settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    gw = Gateway(
        fixture_functions,
        local_issuer(stack_settings),
        DeliveryPolicy(attempts=4, initial_backoff_s=0.05),
    )
    app = gw.app()
    async with gw.lifespan(app):
        transport = httpx.ASGITransport(app=app)
        publisher = {"authorization": f"Bearer {gw.publisher_token('tests')}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=publisher
        ) as client:
            client.gateway = gw  # type: ignore[attr-defined]
            yield client


def deliveries(log: Path, **match: Any) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


async def eventually(check: Any, within_s: float = 10.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def structured(
    event_type: str, event_id: str, data: dict[str, Any], source: str = "/tests"
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "type": event_type,
        "source": source,
        "id": event_id,
        "data": data,
    }


CE_JSON = {"content-type": "application/cloudevents+json"}


async def test_broker_delivers_by_filter_and_routes_the_reply(
    gateway: httpx.AsyncClient, echo_log: Path
) -> None:
    body = structured("test.ping", "ping-1", {"n": 41})
    anonymous = await gateway.post(
        "/brokers/default",
        headers={**CE_JSON, "authorization": ""},
        content=json.dumps(structured("test.ping", "anon-1", {"n": 1})),
    )
    assert anonymous.status_code == 401  # a publisher without a token for the broker
    response = await gateway.post("/brokers/default", headers=CE_JSON, content=json.dumps(body))
    assert response.status_code == 202
    delivered = await eventually(lambda: deliveries(echo_log, fn="echo", id="ping-1"))
    assert delivered[0]["verified"] is True  # the delivery carried a token for echo's audience
    assert deliveries(echo_log, id="anon-1") == []
    # The subscriber's reply (test.pong) went back into the broker and reached its subscriber.
    pong = await eventually(lambda: deliveries(echo_log, fn="sink", type="test.pong"))
    assert pong[0]["data"] == {"n": 42} and pong[0]["id"] == "re-ping-1"


async def test_binary_mode_and_unmatched_types(gateway: httpx.AsyncClient, echo_log: Path) -> None:
    headers = {"ce-specversion": "1.0", "ce-type": "test.ping", "ce-source": "/tests",
               "ce-id": "bin-1", "content-type": "application/json"}  # fmt: skip
    response = await gateway.post("/brokers/default", headers=headers, content=b'{"n": 1}')
    assert response.status_code == 202
    await eventually(lambda: deliveries(echo_log, id="bin-1"))
    other = structured("test.nobody", "none-1", {})
    response = await gateway.post("/brokers/default", headers=CE_JSON, content=json.dumps(other))
    assert response.status_code == 202
    await asyncio.sleep(0.3)
    assert deliveries(echo_log, id="none-1") == []
    # A filter on source as well as type: a different source does not match.
    rejected_elsewhere = structured("test.reject", "rej-src", {}, source="/elsewhere")
    await gateway.post("/brokers/default", headers=CE_JSON, content=json.dumps(rejected_elsewhere))
    await asyncio.sleep(0.3)
    assert deliveries(echo_log, id="rej-src") == []


async def test_transient_failures_are_retried_permanent_ones_are_not(
    gateway: httpx.AsyncClient, echo_log: Path
) -> None:
    flaky = structured("test.flaky", "flaky-1", {})
    await gateway.post("/brokers/default", headers=CE_JSON, content=json.dumps(flaky))
    attempts = await eventually(lambda: len(deliveries(echo_log, id="flaky-1")) >= 3 and
                                deliveries(echo_log, id="flaky-1"))  # fmt: skip
    await asyncio.sleep(0.5)
    assert len(deliveries(echo_log, id="flaky-1")) == 3  # two 503s, then success, then stop

    reject = structured("test.reject", "rej-1", {})
    await gateway.post("/brokers/default", headers=CE_JSON, content=json.dumps(reject))
    await eventually(lambda: deliveries(echo_log, id="rej-1"))
    await asyncio.sleep(0.5)
    assert len(deliveries(echo_log, id="rej-1")) == 1  # a 4xx is final
    assert attempts


async def test_malformed_events_are_rejected(gateway: httpx.AsyncClient) -> None:
    for headers, body in (
        (CE_JSON, b"{not json"),
        (CE_JSON, json.dumps({"type": "x"}).encode()),
        ({"content-type": "application/json"}, b'{"a": 1}'),
    ):
        response = await gateway.post("/brokers/default", headers=headers, content=body)
        assert response.status_code == 400, body


async def test_cron_tick_is_a_pingsource_event(gateway: httpx.AsyncClient, echo_log: Path) -> None:
    gw: Gateway = gateway.gateway  # type: ignore[attr-defined]
    await gw.fire_cron("sink", "tick")
    tick = await eventually(
        lambda: deliveries(echo_log, fn="sink", type="dev.knative.sources.ping")
    )
    assert tick[0]["data"] == {"job": "nightly"}
    assert tick[0]["source"] == "/apis/v1/namespaces/visitlens/pingsources/tick"
    with pytest.raises(LookupError):
        await gw.fire_cron("sink", "no-such-trigger")


def minio_notification(
    key: str, bucket: str = "staff-faces", name: str = "s3:ObjectCreated:Put"
) -> dict[str, Any]:
    """The JSON MinIO's webhook target posts (keys URL-encoded, as MinIO sends them)."""
    from urllib.parse import quote_plus

    record = {
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
        "eventTime": "2026-11-21T10:00:00.000Z", "eventName": name,
        "userIdentity": {"principalId": "visitlens"},
        "requestParameters": {"principalId": "visitlens", "region": "", "sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "1789ABC", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "visitlens"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(key), "size": 2048, "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                       "contentType": "image/jpeg", "userMetadata": {"content-type": "image/jpeg"},
                       "sequencer": "1789ABCDEF012345"},
        },
        "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
    }  # fmt: skip
    return {"EventName": name, "Key": f"{bucket}/{key}", "Records": [record]}


async def test_minio_notifications_become_cloudevents(
    gateway: httpx.AsyncClient, echo_log: Path
) -> None:
    key = "tenant-1/staff 7/front.jpg"
    webhook = {"authorization": f"Bearer {gateway.gateway.issuer.minio_token}"}  # type: ignore[attr-defined]
    unsigned = await gateway.post("/minio/events", json=minio_notification(key))
    assert unsigned.status_code == 401  # the broker's publisher token is not the webhook's
    response = await gateway.post("/minio/events", json=minio_notification(key), headers=webhook)
    assert response.status_code == 202 and response.json() == {"deliveries": 1}
    got = await eventually(lambda: deliveries(echo_log, fn="sink", subject=key))
    assert got[0]["type"] == "io.minio.s3:ObjectCreated:Put"
    assert got[0]["data"]["s3"]["bucket"]["name"] == "staff-faces"
    for miss in (
        minio_notification("tenant-2/a.jpg"),
        minio_notification("tenant-1/a.png"),
        minio_notification("tenant-1/a.jpg", bucket="faces-raw"),
        minio_notification("tenant-1/b.jpg", name="s3:ObjectRemoved:Delete"),
    ):
        response = await gateway.post("/minio/events", json=miss, headers=webhook)
        assert response.json() == {"deliveries": 0}
    bad = await gateway.post("/minio/events", content=b'{"EventName": "x"}', headers=webhook)
    assert bad.status_code == 400


async def test_http_ingress_routes_by_prefix(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/echo/hello", params={"q": "1"})
    assert response.status_code == 200 and response.json() == {
        "path": "/echo/hello",
        "query": "q=1",
    }
    assert (await gateway.get("/nobody-serves-this")).status_code == 404
    for path in ("/echo/a%0Ab", "/echo/%00", "/echo/%7F", "/echo/a%09b"):  # never a crash
        assert (await gateway.get(path)).status_code < 500, path
    # a server hands the gateway the decoded path: control characters are the caller's fault
    gw: Gateway = gateway.gateway  # type: ignore[attr-defined]
    for raw in ("/echo/a\tb", "/echo/a\x00", "/echo/\x7f"):
        scope: dict[str, Any] = {
            "type": "http", "method": "GET", "path": raw, "headers": [], "query_string": b""
        }  # fmt: skip
        refused = await gw.http_ingress(Request(scope, _empty_body))
        assert refused.status_code == 400, raw


async def test_visitlens_dev_serves_the_api_end_to_end(
    stack_settings: Settings, db: Database, api_client: httpx.AsyncClient
) -> None:
    """`visitlens dev` as an operator runs it; then an authenticated request to the CRUD API."""
    log = stack_settings.data_dir / "logs" / "dev-test.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once, then awaited via HTTP
            [sys.executable, "-m", "visitlens.cli", "dev"],
            env={**function_env(stack_settings), "VISITLENS_STACK__GATEWAY_PORT": str(stack_settings.stack.gateway_port),
                 "VISITLENS_STACK__FUNCTION_PORT_BASE": str(stack_settings.stack.function_port_base + 20)},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{stack_settings.stack.gateway_port}"
    try:
        wait_until("gateway", lambda: _up(base), timeout_s=60, pid=proc.pid, log_path=log)
        root = await system_admin_token(db, api_client)
        async with httpx.AsyncClient(base_url=base) as http:
            headers = {"authorization": f"Bearer {root}"}
            created = await http.post("/v1/tenants", headers=headers,
                                      json={"slug": f"dev-{os.getpid()}", "name": "Dev"})  # fmt: skip
            assert created.status_code == 201, created.text
            listed = await http.get("/v1/tenants", headers=headers, params={"limit": 500})
            assert created.json()["id"] in {t["id"] for t in listed.json()["items"]}
            assert (await http.get("/v1/tenants")).status_code == 401
            jwks = (await http.get("/.well-known/jwks.json")).json()
            assert jwks["keys"] and all(k["kty"] == "RSA" and "d" not in k for k in jwks["keys"])
    finally:
        terminate("visitlens dev", proc.pid)
    assert proc.wait(timeout=20) is not None


async def _empty_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
