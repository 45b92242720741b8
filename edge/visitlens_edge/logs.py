"""Edge logging: every process sends its records to the supervisor, which alone writes stderr and
the size-rotated file (one writer, so rotation is safe). Ids and counts only; never embeddings,
images or keys."""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
from multiprocessing.queues import Queue
from typing import Any

from visitlens.adapters.logs import configure
from visitlens_edge.config import EdgeSettings

_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def supervisor_logging(
    settings: EdgeSettings, context: Any = None
) -> tuple[Queue[logging.LogRecord], logging.handlers.QueueListener]:
    configure(settings.log.level)
    formatter = logging.Formatter(_FORMAT)
    handlers: list[logging.Handler] = []
    stream = logging.StreamHandler()
    stream.setFormatter(formatter)
    handlers.append(stream)
    if settings.log.file is not None:
        settings.log.file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            settings.log.file, maxBytes=settings.log.max_bytes, backupCount=settings.log.backups
        )
        rotating.setFormatter(formatter)
        handlers.append(rotating)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    queue: Queue[logging.LogRecord] = (context or multiprocessing).Queue(-1)
    root.addHandler(logging.handlers.QueueHandler(queue))
    listener = logging.handlers.QueueListener(queue, *handlers, respect_handler_level=False)
    listener.start()
    return queue, listener


def child_logging(queue: Queue[logging.LogRecord], level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(queue))
    configure(level)
