"""The edge worker from its own install: a fresh venv with only ``visitlens[edge]`` (what
edge/Dockerfile and scripts/mac/setup.zsh install) checks its configuration and takes a frame
through the camera worker — no server package (starlette, asyncpg, pymilvus, minio, jwt) there."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

ONE_FRAME = r"""
import sys, threading
from pathlib import Path
import numpy as np
from visitlens_edge.camera import CameraWorker
from visitlens_edge.config import load
for server_only in ("starlette", "asyncpg", "pymilvus", "minio", "jwt", "functions_framework"):
    assert server_only not in sys.modules, server_only
    try:
        __import__(server_only)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{server_only} is installed in the edge-only venv")
settings = load(Path(sys.argv[1]))
worker = CameraWorker(settings, settings.cameras[0], threading.Event(), None)
worker.process(np.zeros((480, 640, 3), np.uint8), 0.0)
worker.queue.close()
print("one frame processed", worker.stats.frames_processed + worker.stats.frames_skipped_static)
"""


def test_the_edge_installs_and_runs_on_its_own(tmp_path: Path, models_dir: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    environment = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(REPO / "constraints.txt"),
         f"{REPO}[edge]"],
        check=True, env=environment, timeout=600,
    )  # fmt: skip
    config = tmp_path / "edge.yaml"
    text = (REPO / "edge" / "edge.example.yaml").read_text()
    text = text.replace("models_dir: var/models", f"models_dir: {models_dir}")
    text = text.replace("var/edge", str(tmp_path / "queue")).replace(
        "var/logs", str(tmp_path / "logs")
    )
    config.write_text(text)
    checked = subprocess.run(
        [str(env_dir / "bin" / "visitlens-edge"), "check-config", "--config", str(config)],
        capture_output=True, text=True, env=environment, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    frame = subprocess.run(
        [str(python), "-c", ONE_FRAME, str(config)],
        capture_output=True, text=True, env=environment, timeout=300, check=False,
    )  # fmt: skip
    assert frame.returncode == 0, frame.stdout + frame.stderr
    assert "one frame processed 1" in frame.stdout
