"""The embedded Milvus Lite server: one process owns the data dir, clients connect by URI."""

from __future__ import annotations

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_fixed

from visitlens.config import Settings
from visitlens_dev.stack.processes import find_binary, spawn, tcp_open, wait_until


def start(settings: Settings) -> tuple[int, str]:
    """Start ``milvus-lite server`` bound to the stack host; return (pid, uri)."""
    host, port = settings.stack.host, settings.stack.milvus_port
    data = (settings.data_dir / "milvus").resolve()
    log = (settings.data_dir / "logs" / "milvus.log").resolve()
    argv = [
        str(find_binary("milvus-lite")),
        "server",
        "--data-dir",
        str(data),
        "--host",
        host,
        "--port",
        str(port),
    ]
    pid = spawn("milvus-lite", argv, log)
    uri = f"http://{host}:{port}"
    wait_until(
        "milvus-lite",
        lambda: tcp_open(host, port) and healthy(uri),
        timeout_s=settings.stack.start_timeout_s,
        pid=pid,
        log_path=log,
    )
    return pid, uri


def healthy(uri: str) -> bool:
    """Milvus answers a listing — asked up to three times: a process with a long-lived connection
    to the same server shares gRPC's subchannel, and a GOAWAY the server sent it ("too many
    pings") failed one check of a healthy server (seen late in a `make test` worker)."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    def ask() -> bool:
        try:
            client = MilvusClient(uri=uri, timeout=3)
            client.list_collections()
            client.close()
        except (MilvusException, OSError):
            return False
        return True

    retrying = Retrying(
        stop=stop_after_attempt(3), wait=wait_fixed(0.5),
        retry=retry_if_result(lambda ok: not ok), retry_error_callback=lambda _: False,
    )  # fmt: skip
    answer: bool = retrying(ask)
    return answer
