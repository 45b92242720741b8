"""Logging set-up shared by the functions, the CLI and the edge worker.

Log ids and counts only: never embeddings, face crops, tokens or DSNs.

``VISITLENS_LOG_FORMAT=json`` (a cluster) writes one JSON object per line (python-json-logger);
the default is a plain line for a terminal. Either way each record carries the CloudEvent id and
the W3C trace id of what is being handled (``log_context``): a pass keeps its trace id from the
edge (the ``traceparent`` extension it sets) through ingest to the visit.recorded event and the
aggregate function, so one grep follows it.
"""

from __future__ import annotations

import logging
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# Libraries whose INFO lines echo command lines or connection strings.
_NOISY = ("pgserver", "httpx", "httpcore", "urllib3", "alembic")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(event_id)s %(trace_id)s"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class LogContext:
    event_id: str | None = None
    trace_id: str | None = None


_EMPTY = LogContext()
_context: ContextVar[LogContext] = ContextVar(
    "visitlens_log_context",
    default=_EMPTY,  # frozen: never mutated, only replaced
)


def new_traceparent(trace_id: str | None = None) -> str:
    """A W3C traceparent: the given (or a new) trace id and a new span id, sampled."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def log_context(event_id: str | None = None, traceparent: str | None = None) -> None:
    """What this task handles from now on: an event id (kept if None) and the trace it belongs to
    (a malformed or missing traceparent keeps the current trace, or starts a new one)."""
    current = _context.get()
    found = _TRACEPARENT.match(traceparent or "")
    trace = found.group(1) if found else current.trace_id or secrets.token_hex(16)
    # an event id from outside is logged, so only a bounded, printable one
    if event_id is not None:
        event_id = "".join(c for c in event_id[:128] if c.isprintable() and not c.isspace())
    _context.set(LogContext(event_id or current.event_id, trace))


def child_traceparent() -> str | None:
    """The traceparent for an event this task emits (same trace, a new span); None outside one."""
    trace = _context.get().trace_id
    return new_traceparent(trace) if trace else None


def reset_log_context() -> None:
    _context.set(_EMPTY)


def _with_context(record: logging.LogRecord) -> logging.LogRecord:
    ctx = _context.get()
    record.event_id = ctx.event_id
    record.trace_id = ctx.trace_id
    parts = [f"event={ctx.event_id}" if ctx.event_id else "",
             f"trace={ctx.trace_id}" if ctx.trace_id else ""]  # fmt: skip
    joined = " ".join(p for p in parts if p)
    record.context = f" [{joined}]" if joined else ""
    return record


_plain_factory = logging.getLogRecordFactory()


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Every record, whichever handler formats it, knows the event and trace being handled."""
    return _with_context(_plain_factory(*args, **kwargs))


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        _JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
    )


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger once; later calls only change the level."""
    logging.setLogRecordFactory(_factory)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(_FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def traced(attributes: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent's attributes continuing the trace being handled (W3C Distributed Tracing
    extension), unless they carry a trace of their own."""
    child = child_traceparent()
    return (
        {**attributes, "traceparent": child}
        if child and "traceparent" not in attributes
        else attributes
    )
