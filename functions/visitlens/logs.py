"""Logging set-up shared by the functions, the CLI and the edge worker.

Log ids and counts only: never embeddings, face crops, tokens or DSNs.
"""

from __future__ import annotations

import logging

# Libraries whose INFO lines echo command lines or connection strings.
_NOISY = ("pgserver", "httpx", "httpcore", "urllib3", "alembic")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=_FORMAT)
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
