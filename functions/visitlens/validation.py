"""Validation at the border, free of any web framework (the edge imports it too): pydantic errors
as field problems, and inputs PostgreSQL could not store."""

from __future__ import annotations

from pydantic import ValidationError

from visitlens.errors import FieldProblem, InvalidInput, ProblemList


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
