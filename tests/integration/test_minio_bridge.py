"""The in-cluster MinIO bridge: MinIO's webhook JSON in (with MinIO's bearer token), one binary
CloudEvent per record out to K_SINK (a real HTTP server here), wrong token or body refused."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cloudevents.http import from_http
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from visitlens.adapters.minio_bridge import create_app
from visitlens.config import EventAuthSettings
from visitlens_dev.stack.processes import free_port


@pytest.fixture
def sink() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    async def collect(request: Request) -> Response:
        event = from_http(dict(request.headers), await request.body())
        received.append((event, request.headers.get("authorization")))
        return Response(status_code=202)

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/", collect, methods=["POST"])]),
                                           host="127.0.0.1", port=port, log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", received
    server.should_exit = True
    thread.join(5)


async def test_records_become_cloudevents_on_the_sink(
    sink: tuple[str, list[Any]], tmp_path: Path
) -> None:
    url, received = sink
    publisher = tmp_path / "token"
    publisher.write_text("publisher-token\n")
    app = create_app(
        EventAuthSettings(
            sink=url, minio_token=SecretStr("s3cret-token"), publish_token_file=publisher
        )
    )
    record = {
        "eventName": "s3:ObjectCreated:Put",
        "eventTime": "2026-11-21T10:00:00.000Z",
        "s3": {"bucket": {"name": "faces-derived"},
               "object": {"key": "staff-faces/t/s/front+photo.jpg", "size": 10, "sequencer": "A1"}},
    }  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b") as c:
        ok = await c.post("/", json={"Records": [record, record]},
                          headers={"authorization": "Bearer s3cret-token"})  # fmt: skip
        assert ok.status_code == 202 and ok.json() == {"published": 2}
        assert (await c.post("/", json={"Records": []})).status_code == 401
        wrong = await c.post("/", json={"Records": []}, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bad = await c.post(
            "/", content=b"not json", headers={"authorization": "Bearer s3cret-token"}
        )
        assert bad.status_code == 400
        raw = await c.post("/", json={"Records": []}, headers={"authorization": "s3cret-token"})
        assert raw.status_code == 202  # MinIO may send the token without the Bearer scheme
    await asyncio.sleep(0)
    assert len(received) == 2
    event, authorization = received[0]
    assert authorization == "Bearer publisher-token"  # the bridge proves itself to the Broker
    assert event["type"] == "io.minio.s3:ObjectCreated:Put"
    assert event["source"] == "minio:s3:::faces-derived"
    assert event["subject"] == "staff-faces/t/s/front photo.jpg"  # MinIO's URL-encoding undone
    assert event.data["s3"]["object"]["size"] == 10
