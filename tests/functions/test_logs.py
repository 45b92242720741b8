"""One pass is followable in the logs: the edge's CloudEvent id and W3C trace id are on every line
ingest logs for it, the visit.recorded reply carries the same trace (a new span), and aggregate logs
that trace too. In a cluster the lines are JSON with those fields."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from tests.conftest import TenantWorld, delivery, function_clients
from tests.functions.test_ingest import T0, person, send, track_event
from visitlens.adapters.event_tokens import EventTokenIssuer
from visitlens.adapters.logs import (
    LogContext,
    _context,
    _with_context,
    json_formatter,
    log_context,
    new_traceparent,
)

pytestmark = pytest.mark.integration
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
async def clients(function_environment: None) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with function_clients("ingest", "aggregate") as made:
        yield made


async def test_a_pass_keeps_its_trace_from_the_edge_to_aggregate(
    clients: dict[str, httpx.AsyncClient],
    world: TenantWorld,
    event_issuer: EventTokenIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = track_event(world, person(), T0 + timedelta(days=1, hours=3), snapshot_key=None)
    event["traceparent"] = f"00-{TRACE}-00f067aa0ba902b7-01"  # as visitlens-edge sets it
    caplog.set_level(logging.INFO)
    response = await send(clients["ingest"], event, world.worker_a)
    assert response.status_code == 200, response.text
    ingest_lines = [r for r in caplog.records if r.name.startswith("visitlens.identity")]
    assert ingest_lines, "ingest logged its decision"
    assert {(r.event_id, r.trace_id) for r in ingest_lines} == {(event["id"], TRACE)}  # type: ignore[attr-defined]
    # the reply (visit.recorded) continues the trace with a span of its own
    parent = response.headers["ce-traceparent"]
    assert parent.startswith(f"00-{TRACE}-") and "00f067aa0ba902b7" not in parent

    caplog.clear()
    reply = {
        k: v for k, v in response.headers.items() if k.startswith("ce-") or k == "content-type"
    }
    aggregated = await clients["aggregate"].post(
        "/", headers=delivery(event_issuer, "aggregate", reply), content=response.content
    )
    assert aggregated.status_code == 200, aggregated.text
    aggregate_lines = [r for r in caplog.records if r.name.startswith("visitlens")]
    assert aggregate_lines, "aggregate logged what it rebuilt"
    recorded_id = response.headers["ce-id"]
    assert {(r.event_id, r.trace_id) for r in aggregate_lines} == {(recorded_id, TRACE)}  # type: ignore[attr-defined]


def test_log_lines_carry_the_event_and_trace_and_json_is_json() -> None:
    token = _context.set(LogContext())
    try:
        log_context("trk-1\n\x00forged", new_traceparent(TRACE))
        record = logging.LogRecord(
            "visitlens.x", logging.INFO, __file__, 1, "visit %s", ("v",), None
        )
        line = json.loads(json_formatter().format(_with_context(record)))
        assert line["event_id"] == "trk-1forged"  # no line breaks or control bytes from outside
        assert line["trace_id"] == TRACE and line["message"] == "visit v"
        assert line["level"] == "INFO" and line["logger"] == "visitlens.x"
        assert record.context == f" [event=trk-1forged trace={TRACE}]"  # type: ignore[attr-defined]
        log_context(None, "not-a-traceparent")  # a malformed one keeps the trace
        assert _context.get().trace_id == TRACE
    finally:
        _context.reset(token)
