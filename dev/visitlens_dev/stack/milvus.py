"""The embedded Milvus Lite server: one process owns the data dir, clients connect by URI."""

from __future__ import annotations

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
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    try:
        client = MilvusClient(uri=uri, timeout=3)
        client.list_collections()
        client.close()
    except (MilvusException, OSError):
        return False
    return True
