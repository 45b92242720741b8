"""Every function counts and times its requests by route *template* (never a raw path, a tenant
or a token), counts refused events by reason and identity decisions by outcome, times gallery
searches, and serves it all at /metrics on its own port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from prometheus_client import REGISTRY

from tests.conftest import TenantWorld, delivery, function_clients
from tests.functions.test_ingest import T0, person, send, track_event
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.metrics import start
from visitlens.config import MetricsSettings
from visitlens.contracts import PING_TYPE
from visitlens_dev.stack.processes import free_port

pytestmark = pytest.mark.integration
SITES = "/v1/tenants/{tenant_id:uuid}/sites"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients("api", "ingest", "aggregate") as made:
        yield made


async def test_requests_events_and_decisions_are_counted_without_identifiers(
    clients: dict[str, httpx.AsyncClient], world: TenantWorld, event_issuer: EventTokenIssuer
) -> None:
    api, ingest = clients["api"], clients["ingest"]
    ok_before = sample("visitlens_http_requests_total", function="api", route=SITES,
                       method="GET", status="200")  # fmt: skip
    denied_before = sample("visitlens_http_requests_total", function="api", route=SITES,
                           method="GET", status="401")  # fmt: skip
    lost_before = sample("visitlens_http_requests_total", function="api", route="unmatched",
                         method="GET", status="404")  # fmt: skip
    for _ in range(3):
        ok = await api.get(f"/v1/tenants/{world.tenant_id}/sites", headers=world.auth(world.admin))
        assert ok.status_code == 200
    assert (await api.get(f"/v1/tenants/{world.tenant_id}/sites")).status_code == 401
    assert (await api.get(f"/v1/no/{uuid.uuid4()}")).status_code == 404
    assert sample("visitlens_http_requests_total", function="api", route=SITES, method="GET",
                  status="200") == ok_before + 3  # fmt: skip
    assert sample("visitlens_http_requests_total", function="api", route=SITES, method="GET",
                  status="401") == denied_before + 1  # fmt: skip
    assert sample("visitlens_http_requests_total", function="api", route="unmatched",
                  method="GET", status="404") == lost_before + 1  # fmt: skip
    assert sample("visitlens_http_request_duration_seconds_count", function="api", route=SITES,
                  method="GET") >= 4  # fmt: skip

    new_before = sample("visitlens_match_decisions_total", outcome="new_customer")
    searches_before = sample("visitlens_gallery_search_seconds_count")
    event = track_event(world, person(), T0 + timedelta(days=1), snapshot_key=None)
    assert (await send(ingest, event, world.worker_a)).status_code == 200
    assert sample("visitlens_match_decisions_total", outcome="new_customer") == new_before + 1
    assert sample("visitlens_gallery_search_seconds_count") > searches_before
    assert sample("visitlens_http_requests_total", function="ingest", route="/v1/events",
                  method="POST", status="200") >= 1  # fmt: skip

    reason = "invalid_input"
    kind = "com.visitlens.face.detected.v2"
    refused_before = sample("visitlens_events_rejected_total", type=kind, reason=reason)
    bad = track_event(world, person(), T0, snapshot_key=None)
    bad["data"]["shots"] = []
    response = await send(ingest, bad, world.worker_a)
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith(f"/{reason}")
    assert sample("visitlens_events_rejected_total", type=kind, reason=reason) == refused_before + 1

    # the aggregate function's minutely tick sets the platform's statistics gauges
    headers, body = to_binary(CloudEvent(
        {"type": PING_TYPE, "source": "/apis/v1/namespaces/x/pingsources/tick", "id": "m1"}, {}))  # fmt: skip
    ticked = await clients["aggregate"].post(
        "/", headers=delivery(event_issuer, "aggregate", headers), content=body
    )
    assert ticked.status_code == 200, ticked.text
    assert REGISTRY.get_sample_value("visitlens_aggregation_pending_hours") == 0
    assert REGISTRY.get_sample_value("visitlens_aggregation_oldest_pending_seconds") == 0
    lag = REGISTRY.get_sample_value("visitlens_aggregation_lag_seconds")
    assert lag is not None and lag > 0  # the newest aggregated visit change is in the past

    # served on its own port; no tenant, person, token or path parameter in any label
    port = free_port()
    start(MetricsSettings(port=port))
    async with httpx.AsyncClient() as scrape:
        text = (await scrape.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "visitlens_http_requests_total{" in text and "visitlens_match_decisions_total{" in text
    for secret in (world.tenant_id, world.site_a, world.admin, world.worker_a, world.worker_key):
        assert secret not in text
