"""Validation at the border, free of any web framework (the edge imports it too): pydantic errors
as field problems, and inputs PostgreSQL could not store."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, ValidationError

from visitlens.errors import FieldProblem, InvalidInput, ProblemList

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Every instant visitlens takes from outside lies in [EARLIEST, LATEST): far enough from
``datetime.min`` and ``datetime.max`` that any arithmetic on it (a pass's length, a horizon, a
report bucket, an offset of ±24 h) stays in range. Comparing aware instants cannot overflow."""


def _bounded(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return value


def bounded_instant(value: datetime) -> datetime:
    """``value`` if it is aware and within bounds, else ``ValueError`` (for instants read outside
    a pydantic model, such as a header)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset")
    return _bounded(value)


def _bounded_day(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError(f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_bounded)]
"""A timestamp with its UTC offset, bounded (see :data:`EARLIEST`): the type of every datetime in
an event's data or a request."""
Day = Annotated[date, AfterValidator(_bounded_day)]
"""A calendar date from a request, bounded like :data:`Instant`."""


def from_validation_error(exc: ValidationError, prefix: str) -> InvalidInput:
    """Every pydantic error at once, each with a dotted field path under ``prefix``."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in (prefix, *err["loc"]) if part != "")
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append(FieldProblem(path, message))
    fields = ", ".join(p.field for p in problems)
    return InvalidInput(f"invalid {prefix}: {fields}", problems=problems)


def refuse_nul(data: object, prefix: str) -> None:
    """422 naming every string (or key) that holds a NUL character: PostgreSQL cannot store one
    in text or jsonb, and no legitimate input needs it."""
    problems = ProblemList()
    stack: list[tuple[object, str]] = [(data, prefix)]
    while stack:  # iterative: JSON nesting depth is bounded by the parser, not by this walk
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                problems.add(path, "must not contain NUL characters")
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in str(key):
                    problems.add(path, "keys must not contain NUL characters")
                stack.append((item, f"{path}.{key}"))
        elif isinstance(value, list):  # numbers (an embedding's hundreds) need no path
            stack.extend((item, f"{path}.{i}") for i, item in enumerate(value)
                         if isinstance(item, str | dict | list))  # fmt: skip
    problems.raise_if_any("invalid input: NUL characters")


MIN_PASSWORD_LENGTH = 12
"""The shortest password a user may choose (NIST SP 800-63B: at least 8; we ask 12)."""
