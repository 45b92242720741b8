"""A private, throw-away embedded stack on free ports (tests and benchmarks)."""

from __future__ import annotations

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


def ephemeral_settings(data_dir: Path, milvus_uri: str | None = None) -> Settings:
    # Below the kernel's range for outgoing connections (see consecutive_free_ports): a service
    # restarted on its port (the fault suite) must find it free again, and S3 takes port + 1 too.
    # From a random start, so that two stacks started at once (a test run beside a benchmark)
    # rarely try the same ports.
    spread = secrets.randbelow(300) * 10
    milvus = consecutive_free_ports(1, 23000 + spread)
    s3 = consecutive_free_ports(2, 23000 + spread + 3)
    gateway = consecutive_free_ports(1, 23000 + spread + 6)
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
            seaweed_port_base=consecutive_free_ports(6, 21000),
            gateway_port=gateway,
            function_port_base=consecutive_free_ports(8, 31000),
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
