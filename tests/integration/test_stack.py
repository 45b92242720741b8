"""The embedded stack manager: buckets and lifecycle, clear errors for taken ports and missing
binaries (never a hang)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from visitlens.adapters.endpoints import Endpoints
from visitlens.config import Environment, Settings, StackSettings
from visitlens.errors import StackError
from visitlens_dev.stack import manager, s3
from visitlens_dev.stack.processes import find_binary, free_port

pytestmark = pytest.mark.integration


def test_status_reports_every_service_healthy(stack_settings: Settings) -> None:
    statuses = {s.name: s for s in manager.status(stack_settings)}
    assert set(statuses) == {"postgres", "milvus", "s3"}
    assert all(s.healthy and s.mode == "embedded" for s in statuses.values())


def test_buckets_exist_with_raw_expiry(stack_settings: Settings, endpoints: Endpoints) -> None:
    client = s3.client(stack_settings.s3, endpoints.s3_endpoint)
    assert client.bucket_exists("faces-raw") and client.bucket_exists("faces-derived")
    assert s3.raw_expiry_days(stack_settings.s3, endpoints.s3_endpoint) == 30
    s3.ensure_buckets(stack_settings.s3, endpoints.s3_endpoint)  # idempotent
    assert s3.raw_expiry_days(stack_settings.s3, endpoints.s3_endpoint) == 30


def test_up_again_is_idempotent(stack_settings: Settings) -> None:
    started = time.monotonic()
    manager.up(stack_settings)
    assert time.monotonic() - started < 5


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        settings = Settings(
            env=Environment.TEST,
            data_dir=tmp_path,
            database={"url": "postgresql://nobody@127.0.0.1:1/x"},  # type: ignore[arg-type]
            milvus={"uri": None},  # type: ignore[arg-type]
            stack=StackSettings(milvus_port=taken, s3_port=free_port()),
        )
        started = time.monotonic()
        with pytest.raises(StackError, match=f"milvus={taken}"):
            manager.up(settings)
        assert time.monotonic() - started < 5


def test_a_missing_binary_is_a_clear_error() -> None:
    with pytest.raises(StackError, match="not found"):
        find_binary("visitlens-no-such-binary")


def test_unreachable_external_service_is_a_clear_error(tmp_path: Path) -> None:
    settings = Settings(
        env=Environment.TEST,
        data_dir=tmp_path,
        database={"url": "postgresql://nobody@127.0.0.1:1/x"},  # type: ignore[arg-type]
        milvus={"uri": f"http://127.0.0.1:{free_port()}"},  # type: ignore[arg-type]
    )
    started = time.monotonic()
    with pytest.raises(StackError, match="MILVUS_URI"):
        manager.up(settings)
    assert time.monotonic() - started < 30
