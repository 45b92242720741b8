"""`visitlens dev`: every function as its own functions-framework (aio) process behind the gateway."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from visitlens.adapters.endpoints import resolve
from visitlens.adapters.event_tokens import EventTokenIssuer, broker_audience
from visitlens.config import Settings
from visitlens_dev.runtime.gateway import Deployed, Gateway
from visitlens_dev.runtime.spec import FUNCTIONS_DIR, FunctionSpec, discover
from visitlens_dev.stack.processes import (
    require_free_ports,
    spawn,
    tcp_open,
    terminate,
    wait_until,
)

logger = logging.getLogger(__name__)


def function_env(settings: Settings) -> dict[str, str]:
    """The environment of a function process: this one's, plus the resolved service addresses."""
    env = dict(os.environ)
    env.update(resolve(settings).environment())
    env["VISITLENS_DATA_DIR"] = str(settings.data_dir.resolve())
    env["VISITLENS_ENV"] = settings.env.value
    return env


def local_issuer(settings: Settings) -> EventTokenIssuer:
    """The local stand-in for the cluster's service-account issuer, kept in the data dir."""
    return EventTokenIssuer((settings.data_dir / "event-issuer").resolve())


def metrics_ports_of(settings: Settings, specs: list[FunctionSpec]) -> dict[str, int]:
    """Where each local function serves /metrics (``metrics.port`` + its index; none if 0)."""
    if not settings.metrics.port:
        return {}
    return {s.name: settings.metrics.port + i for i, s in enumerate(specs)}


@contextmanager
def running_functions(
    settings: Settings, specs: list[FunctionSpec] | None = None
) -> Iterator[list[Deployed]]:
    """Start one ``functions-framework --asgi`` process per function; stop them on exit."""
    specs = discover() if specs is None else specs
    issuer = local_issuer(settings)
    host = settings.stack.host
    ports = {s.name: settings.stack.function_port_base + i for i, s in enumerate(specs)}
    require_free_ports(host, {f"function {name}": port for name, port in ports.items()})
    metrics_ports = metrics_ports_of(settings, specs)
    if metrics_ports:
        require_free_ports(host, {f"metrics of {n}": p for n, p in metrics_ports.items()})
    env = {**function_env(settings), **issuer.environment()}
    # Like a Knative SinkBinding: where a function publishes events of its own (the Broker),
    # with a token for the Broker's audience (a projected service-account token in a cluster).
    env["K_SINK"] = f"http://{host}:{settings.stack.gateway_port}/brokers/default"
    logs = (settings.data_dir / "logs").resolve()
    pids: dict[str, int] = {}
    try:
        for spec in specs:
            port = ports[spec.name]
            argv = [
                sys.executable, "-m", "functions_framework",
                "--target", spec.target,
                "--source", str(spec.source),
                "--signature-type", spec.signature,
                "--asgi",
                "--host", host,
                "--port", str(port),
            ]  # fmt: skip
            token_file = issuer.directory / f"publisher-{spec.name}.jwt"
            token_file.write_text(
                issuer.token(broker_audience("default"), f"local:publisher:{spec.name}", 7 * 86_400)
            )
            token_file.chmod(0o600)
            function_env_ = {**env, "VISITLENS_EVENTS__PUBLISH_TOKEN_FILE": str(token_file)}
            if settings.metrics.port:  # each function its own metrics port: base + its index
                function_env_["VISITLENS_METRICS__PORT"] = str(metrics_ports[spec.name])
            pids[spec.name] = spawn(
                f"function {spec.name}", argv, logs / f"fn-{spec.name}.log", function_env_
            )
        for spec in specs:
            port = ports[spec.name]
            wait_until(
                f"function {spec.name}",
                lambda p=port: tcp_open(host, p),  # type: ignore[misc]
                timeout_s=settings.stack.start_timeout_s,
                pid=pids[spec.name],
                log_path=logs / f"fn-{spec.name}.log",
            )
        yield [Deployed(spec, f"http://{host}:{ports[spec.name]}") for spec in specs]
    finally:
        for name, pid in pids.items():
            terminate(f"function {name}", pid, timeout_s=10)


def web_console_dir() -> Path | None:
    """The built web console of this checkout (``make web``), if there is one."""
    dist = FUNCTIONS_DIR.parent / "web" / "dist"
    return dist if (dist / "index.html").is_file() else None


async def serve_gateway(settings: Settings, deployed: list[Deployed]) -> None:
    """Serve the gateway on ``stack.gateway_port`` until SIGINT/SIGTERM."""
    gateway = Gateway(deployed, local_issuer(settings), web_dir=web_console_dir())
    config = uvicorn.Config(
        gateway.app(),
        host=settings.stack.host,
        port=settings.stack.gateway_port,
        log_level="warning",
        lifespan="on",
        server_header=False,  # no banner naming the server software
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


def run_dev(settings: Settings, functions_dir: Path | None = None) -> None:
    specs = discover(functions_dir) if functions_dir else discover()
    require_free_ports(settings.stack.host, {"gateway": settings.stack.gateway_port})
    with running_functions(settings, specs) as deployed:
        for d in deployed:
            logger.info("function %s at %s", d.spec.name, d.url)
        logger.info(
            "gateway on http://%s:%d (Ctrl+C stops)",
            settings.stack.host,
            settings.stack.gateway_port,
        )
        if web_console_dir() is None:
            logger.info("web console not built: `make web`, then it is served at /")
        else:
            logger.info(
                "web console at http://%s:%d/", settings.stack.host, settings.stack.gateway_port
            )
        asyncio.run(serve_gateway(settings, deployed))
