"""A real Milvus standalone server (PyPI ``milvus==2.3.5``) for tests and benchmarks only.

The stand-in for production Milvus: the embedded default stays Milvus Lite. That wheel's server
listens on every interface for nine ports and has no listen-address option, so it is started only
inside a private network namespace (``unshare -n``): :func:`require_private_network` refuses to
start it on the host. Its launcher's own ``stop()`` sends SIGTERM, which hangs 20 to 90 s once data is
present; the server is SIGKILLed instead (safe: a test's data is thrown away).

The wheel is installed at set-up (``make milvus-server``) with pip's hash checking into a folder
of its own, outside the virtual environment's import path, and never downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from visitlens.errors import ConfigurationError
from visitlens_dev.stack.processes import tcp_open

logger = logging.getLogger(__name__)

MILVUS_SERVER_VERSION = "2.3.5"
MILVUS_SERVER_WHEEL_SHA256 = "69515a0630ce29fd10e101fa442afea8ca1387b93a456cd9bd41fdf3deb93d04"
PROXY_PORT = 19530
SERVER_SETTINGS: dict[str, object] = {"queryNode.segcore.chunkRows": 8192}
"""Where the server departs from its release's defaults: exactly what the chart sets for
production Milvus (charts/components/milvus-*/milvus.yaml, checked by tests/contract).

``chunkRows``: rows not yet sealed (the views ingest inserted since the last seal) are searched
chunk by chunk, each chunk a task of its own for the search thread pool; at the default 128 rows
a search's cost grows with every view added (measured on this server at 100k stored, two query
vectors per call: 7.9 ms of server CPU per call with 7.6k unsealed rows at 128, 3.8 ms at 8,192;
ADR 0013). The interim index Milvus builds for unsealed rows (IVF, ``interimIndex.nlist`` 128)
needs chunks of more than eight times ``nlist`` rows, so at 128 it is never built; at 8,192 a
full chunk gets one, as Milvus' configuration reference recommends (``nlist`` about the square
root of ``chunkRows``)."""
PID_FILE = Path("/run/milvus/standalone.pid")
"""Fixed by the 2.3.5 binary whatever MILVUS_RUN_DIR says: one server per machine at a time."""


def package_dir() -> Path:
    """Where set-up installs the wheel: beside the virtual environment, not on its path."""
    return Path(sys.prefix) / "share" / "visitlens" / f"milvus-server-{MILVUS_SERVER_VERSION}"


def install(target: Path | None = None) -> Path:
    """Install the pinned wheel (hash-checked by pip) into ``target``; a no-op when present."""
    target = target or package_dir()
    if (target / "milvus" / "__init__.py").is_file():
        return target
    requirements = target.with_suffix(".requirements.txt")
    requirements.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text(
        f"milvus=={MILVUS_SERVER_VERSION} --hash=sha256:{MILVUS_SERVER_WHEEL_SHA256}\n"
    )
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--target", str(target), "-r", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ConfigurationError(
            f"could not install milvus=={MILVUS_SERVER_VERSION}: {result.stderr.strip()[-300:]}"
        )
    return target


def in_private_network() -> bool:
    """True when this process's network namespace is not the host's: its namespace differs from
    PID 1's or, where PID 1's cannot be read (a container), it has no interface but loopback."""
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:
        pass
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:  # cannot prove it, so no
        return False
    return {line.split(":", 1)[0].strip() for line in lines} == {"lo"}


def require_private_network() -> None:
    if not in_private_network():
        raise ConfigurationError(
            "the Milvus 2.3.5 server listens on all interfaces: run it only inside a private "
            "network namespace (unshare -n sh -c 'ip link set lo up && exec …')"
        )


def _bindable(port: int) -> bool:
    """Whether the launcher's own check (a bind without SO_REUSEADDR) will pass."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return b"OK" in r.read()
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def milvus_server(data_dir: Path, timeout_s: float = 180.0) -> Iterator[str]:
    """Start the server on 127.0.0.1 (inside this private namespace) and yield its URI."""
    require_private_network()
    sys.path.insert(0, str(install()))
    try:
        import milvus  # the launcher's config writer and data files; it is not a client
    finally:
        sys.path.pop(0)
    if PID_FILE.exists():  # a server killed earlier leaves its pid file behind
        _kill_stale(PID_FILE)
    # A port a killed server used can stay unbindable for a while (connections in TIME_WAIT and
    # the launcher binds without SO_REUSEADDR): take the first proxy port that binds now.
    proxy_port = next((p for p in range(PROXY_PORT, PROXY_PORT + 200, 10) if _bindable(p)), None)
    if proxy_port is None:
        raise ConfigurationError("no free port for the Milvus server's proxy")
    config: Any = milvus.MilvusServerConfig(proxy_port=proxy_port)
    config.extra_configs.update(SERVER_SETTINGS)  # written into its milvus.yaml at start
    server: Any = milvus.MilvusServer(config, wait_for_started=False)
    server.set_base_dir(str(data_dir))
    started = time.monotonic()
    server.start()  # resolves the other eight ports (and the health port) among free ones
    pid = server.server_proc.pid
    health_port = int(server.webservice_port)
    try:
        while not (tcp_open("127.0.0.1", proxy_port) and _healthy(health_port)):
            if server.server_proc.poll() is not None:
                raise ConfigurationError(f"milvus {MILVUS_SERVER_VERSION} exited; see {data_dir}")
            if time.monotonic() - started > timeout_s:
                raise ConfigurationError(f"milvus {MILVUS_SERVER_VERSION} not up in {timeout_s}s")
            time.sleep(0.2)
        logger.info("milvus %s up in %.1fs", MILVUS_SERVER_VERSION, time.monotonic() - started)
        yield f"http://127.0.0.1:{proxy_port}"
    finally:
        os.kill(pid, signal.SIGKILL)
        server.server_proc.wait(timeout=30)
        server.server_proc = None
        server.stop()  # closes its log files


def _kill_stale(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    try:  # only a milvus process: the pid may have been reused since
        if pid > 0 and Path(f"/proc/{pid}/comm").read_text().strip() == "milvus":
            os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
    pid_file.unlink(missing_ok=True)
