"""Unit tests run with no visitlens configuration in the environment, whatever ran before."""

from __future__ import annotations

import os

import pytest

_PREFIXES = ("VISITLENS_",)
_ALIASES = ("DATABASE_URL", "MILVUS_URI", "S3_ENDPOINT")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _ALIASES:
            monkeypatch.delenv(name)
