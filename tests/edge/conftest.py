"""Edge fixtures: `visitlens dev` (every function behind the gateway) as a process that a test can
stop and start again, a worker process with a YAML config, and synthetic clips from ../shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml

from tests.conftest import SHARED
from visitlens.adapters.onnx_models import load_models
from visitlens.config import Settings
from visitlens.vision.pipeline import Detector
from visitlens.vision.types import Image, as_image

LFW = SHARED / "faces" / "lfw"


def lfw(identity: str, n: int) -> Image:
    """The n-th photo (1-based, name order) of an LFW identity."""
    path = sorted((LFW / identity).glob("*.jpg"))[n - 1]
    return as_image(cv2.imread(str(path)))


def lfw_bytes(identity: str, n: int) -> bytes:
    return sorted((LFW / identity).glob("*.jpg"))[n - 1].read_bytes()


@pytest.fixture(scope="session")
def detector(stack_settings: Settings, models_dir: Path) -> Detector:
    settings = stack_settings.model_copy(
        update={"models": stack_settings.models.model_copy(update={"dir": models_dir})}
    )
    return load_models(settings)[0]


def edge_config(
    path: Path,
    *,
    tenant_id: str,
    site_id: str,
    cameras: list[dict[str, Any]],
    base_url: str,
    api_key: str,
    models_dir: Path,
    queue_dir: Path,
    **extra: Any,
) -> Path:
    key_file = path.with_name(path.stem + ".key")
    key_file.write_text(api_key)
    key_file.chmod(0o600)
    config: dict[str, Any] = {
        "tenant_id": tenant_id,
        "site_id": site_id,
        "cameras": cameras,
        "api": {"base_url": base_url, "credentials_file": str(key_file)},
        "models_dir": str(models_dir),
        "queue": {"dir": str(queue_dir)},
        "health": {"port": 0},
        "staff": {"refresh_s": 2},
        "delivery": {"backoff_initial_s": 0.2, "backoff_max_s": 2.0, "timeout_s": 20},
        "log": {"file": str(queue_dir / "edge.log")},
        **extra,
    }
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config))))
    return path


def start_worker(config: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "visitlens_edge", "run", "--config", str(config)],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def health_port(log: Path, timeout_s: float = 60) -> int:
    """The worker prints its health address at start (port 0 = any free port)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if "health on http://" in line:
                    return int(line.rsplit(":", 1)[1].split("/")[0])
        time.sleep(0.2)
    raise AssertionError(f"the worker never reported its health port:\n{log.read_text()[-3000:]}")
