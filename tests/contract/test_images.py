"""The images' build context (the repository root) leaves this machine's state out and keeps
what the Dockerfiles copy: the host's web/node_modules must never overwrite the image's own
(`COPY web/ ./` after `npm ci`), and no venv, embedded-stack data or cache may enter an image."""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests.conftest import REPO

DOCKERFILES = ["functions/Dockerfile", "edge/Dockerfile", "web/Dockerfile"]


def patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Whether a context path (or a folder above it) is excluded by one of our patterns: plain
    paths and ``**/name`` forms, the only two the file uses (checked below)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns():
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_the_file_uses_only_forms_this_check_understands() -> None:
    assert all(not p.startswith("!") and "**" not in p.removeprefix("**/") for p in patterns())


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_what_a_dockerfile_copies_from_the_context_is_in_it(dockerfile: str) -> None:
    sources = []
    for line in (REPO / dockerfile).read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source), f"{dockerfile} copies {source}, which .dockerignore leaves out"


@pytest.mark.parametrize(
    "path",
    ["web/node_modules/react/index.js", "web/dist/index.html", ".venv/bin/python", ".git/HEAD",
     ".visitlens/keys/dev.pem", "functions/visitlens/__pycache__/x.pyc", "tests/conftest.py",
     ".tools/nca/bin/nca", "bench-results/latest.json"],
)  # fmt: skip
def test_host_state_never_enters_an_image(path: str) -> None:
    assert ignored(path), path


def test_nothing_under_web_is_copied_that_npm_ci_installs() -> None:
    web = (REPO / "web/Dockerfile").read_text()
    assert re.search(r"RUN npm ci.*\n(.*\n)*COPY web/ \./", web), "the order this file guards"
    assert ignored("web/node_modules")
