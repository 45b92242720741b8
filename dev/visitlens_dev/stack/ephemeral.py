"""A private, throw-away embedded stack on free ports (tests and benchmarks)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from visitlens.adapters.db import migrate
from visitlens.adapters.endpoints import database_dsns
from visitlens.config import (
    DatabaseSettings,
    Environment,
    MilvusSettings,
    S3Settings,
    Settings,
    StackSettings,
)
from visitlens_dev.stack import manager
from visitlens_dev.stack.processes import port_is_free


def consecutive_free_ports(n: int, start: int) -> int:
    """The first of ``n`` consecutive free ports at or above ``start``.

    Keep ``start`` well below 32768: Linux hands out ports from there up (``ip_local_port_range``)
    to outgoing connections, so a port found free now but bound minutes later (a function's
    metrics server starts on its first request) could by then be some connection's local end."""
    for base in range(start, start + 9000, n + 3):
        if all(port_is_free("127.0.0.1", base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no {n} consecutive free ports from {start}")


LANES = 4


def lane() -> int:
    """The pytest-xdist worker this process serves (``gw0``, ``gw1`` …; 0 outside xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(worker) % LANES if worker.isdigit() else 0


def start_in(first: int, width: int, stride: int) -> int:
    """A random start, ``stride`` apart, in this process's lane of ``[first, first + width)``.

    Stacks started at once must not try the same ports: one found free by two of them is bound
    by the first and refused to the second (two `make test` workers did that to SeaweedFS). The
    workers of a run each get a lane of their own; within it, a random start keeps apart the
    stacks of one worker's subprocesses (`visitlens e2e`) and of a benchmark run beside it."""
    lane_width = width // LANES
    return first + lane() * lane_width + secrets.randbelow(lane_width // stride - 1) * stride


def ephemeral_settings(data_dir: Path, milvus_uri: str | None = None) -> Settings:
    # Below the kernel's range for outgoing connections (see consecutive_free_ports): a service
    # restarted on its port (the fault suite) must find it free again, and S3 takes port + 1 too.
    single = start_in(23000, 3000, 10)
    milvus = consecutive_free_ports(1, single)
    s3 = consecutive_free_ports(2, single + 3)
    gateway = consecutive_free_ports(1, single + 6)
    return Settings(
        env=Environment.TEST,
        # private by definition: never a database or object store named by the environment (a
        # test session exports its own stack's addresses to the functions it runs in process)
        database=DatabaseSettings(),
        s3=S3Settings(),
        milvus=MilvusSettings(uri=milvus_uri),
        data_dir=data_dir,
        stack=StackSettings(
            milvus_port=milvus,
            s3_port=s3,
            seaweed_port_base=consecutive_free_ports(6, start_in(21000, 2000, 10)),
            gateway_port=gateway,
            function_port_base=consecutive_free_ports(8, start_in(31000, 1600, 10)),
        ),
    )


@contextmanager
def ephemeral_stack(
    data_dir: Path, *, migrated: bool = True, milvus_uri: str | None = None
) -> Iterator[Settings]:
    """Start a private stack under ``data_dir`` (with an external Milvus at ``milvus_uri``, if
    given); migrate it; stop it on exit, whatever happens."""
    settings = ephemeral_settings(data_dir, milvus_uri)
    manager.up(settings)
    try:
        if migrated:
            owner_dsn, _ = database_dsns(settings)
            migrate.upgrade(owner_dsn, settings)
        yield settings
    finally:
        manager.down(settings)
