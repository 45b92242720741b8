"""`visitlens stack up|down|status`: the embedded PostgreSQL, Milvus Lite and S3 on one machine.

A service given by URL (DATABASE_URL, MILVUS_URI, S3_ENDPOINT) is used as it is and never started.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import fasteners

from visitlens.adapters.endpoints import ServiceState, StackState, embedded_dsn, resolve
from visitlens.config import Settings
from visitlens.errors import StackError
from visitlens_dev.stack import milvus, postgres, s3
from visitlens_dev.stack.processes import pid_alive, require_free_ports, terminate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    mode: str  # "embedded" or "external"
    healthy: bool
    detail: str


def _lock(settings: Settings) -> fasteners.InterProcessLock:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return fasteners.InterProcessLock(str(settings.data_dir / "stack.lock"))


def up(settings: Settings) -> StackState:
    """Start whatever is embedded and not yet running, wait for health, create the buckets."""
    with _lock(settings):
        state = StackState.load(settings.data_dir)
        log_dir = (settings.data_dir / "logs").resolve()

        if settings.database.url is None and settings.database.app_url is None:
            pid, socket_dir = postgres.start(settings)
            state.postgres = ServiceState(pid=pid, address=socket_dir, log="")
            state.postgres_socket_dir = socket_dir
            state.save(settings.data_dir)

        if settings.milvus.uri is None:
            if state.milvus is None or not pid_alive(state.milvus.pid):
                require_free_ports(settings.stack.host, {"milvus": settings.stack.milvus_port})
                pid, uri = milvus.start(settings)
                state.milvus = ServiceState(pid=pid, address=uri, log=str(log_dir / "milvus.log"))
                state.save(settings.data_dir)
        elif not milvus.healthy(settings.milvus.uri):
            raise StackError("Milvus at MILVUS_URI is not reachable")

        if settings.s3.endpoint is None:
            if state.s3 is None or not pid_alive(state.s3.pid):
                pid, endpoint = s3.start(settings)
                state.s3 = ServiceState(pid=pid, address=endpoint, log=str(log_dir / "s3.log"))
                state.save(settings.data_dir)
        elif not s3.healthy(settings.s3, settings.s3.endpoint):
            raise StackError("S3 at S3_ENDPOINT is not reachable (endpoint or credentials)")

        endpoints = resolve(settings)
        s3.ensure_buckets(settings.s3, endpoints.s3_endpoint)
        return state


def down(settings: Settings) -> list[str]:
    """Stop every embedded server this data dir started; external services are left alone."""
    stopped: list[str] = []
    with _lock(settings):
        state = StackState.load(settings.data_dir)
        if state.s3 and terminate("seaweedfs", state.s3.pid):
            stopped.append("s3")
        if state.milvus and terminate("milvus-lite", state.milvus.pid):
            stopped.append("milvus")
        if state.postgres and postgres.stop(settings):
            stopped.append("postgres")
        state.s3 = state.milvus = state.postgres = None
        state.postgres_socket_dir = ""
        state.save(settings.data_dir)
    return stopped


def stop_one(settings: Settings, service: str) -> bool:
    """Stop one embedded server ("postgres", "milvus" or "s3") and keep its data; :func:`up`
    starts it again on the same address (the fault suite's outage)."""
    with _lock(settings):
        state = StackState.load(settings.data_dir)
        if service == "postgres":
            stopped = bool(state.postgres) and postgres.stop(settings)
        elif service == "milvus":
            stopped = state.milvus is not None and terminate("milvus-lite", state.milvus.pid)
            state.milvus = None
        elif service == "s3":
            stopped = state.s3 is not None and terminate("seaweedfs", state.s3.pid)
            state.s3 = None
        else:
            raise ValueError(f"no embedded service {service!r}")
        state.save(settings.data_dir)
    return stopped


def status(settings: Settings) -> list[ServiceStatus]:
    state = StackState.load(settings.data_dir)
    out: list[ServiceStatus] = []

    if settings.database.url is not None or settings.database.app_url is not None:
        out.append(ServiceStatus("postgres", "external", _pg_ok(settings, state), "DATABASE_URL"))
    else:
        detail = state.postgres_socket_dir or "not started"
        out.append(ServiceStatus("postgres", "embedded", _pg_ok(settings, state), detail))

    uri = settings.milvus.uri or (state.milvus.address if state.milvus else "")
    mode = "external" if settings.milvus.uri else "embedded"
    out.append(
        ServiceStatus("milvus", mode, bool(uri) and milvus.healthy(uri), uri or "not started")
    )

    endpoint = settings.s3.endpoint or (state.s3.address if state.s3 else "")
    mode = "external" if settings.s3.endpoint else "embedded"
    ok = bool(endpoint) and s3.healthy(settings.s3, endpoint)
    out.append(ServiceStatus("s3", mode, ok, endpoint or "not started"))
    return out


def _pg_ok(settings: Settings, state: StackState) -> bool:
    if settings.database.url is not None:
        return postgres.healthy(settings.database.url.get_secret_value())
    if settings.database.app_url is not None:
        return postgres.healthy(settings.database.app_url.get_secret_value())
    if not state.postgres_socket_dir:
        return False
    dsn = embedded_dsn(
        state.postgres_socket_dir, settings.database.owner_role, settings.database.name
    )
    return postgres.healthy(dsn)
