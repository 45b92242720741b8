"""Errors as RFC 9457 problem documents: a status, a code, a message and the fields at fault."""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse

from visitlens.errors import RateLimited, TransientError, Unauthenticated, VisitlensError
from visitlens.validation import from_validation_error

__all__ = ["PROBLEM_JSON", "from_validation_error", "problem_document", "problem_response"]

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem_document(error: VisitlensError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://visitlens.dev/problems/{error.code}",
        "title": error.code.replace("_", " "),
        "status": error.status,
        "detail": error.message,
    }
    if error.problems:
        body["errors"] = [{"field": p.field, "message": p.message} for p in error.problems]
    return body


def problem_response(error: VisitlensError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = problem_document(error)
    extra = dict(headers or {})
    if isinstance(error, Unauthenticated):
        extra.setdefault("WWW-Authenticate", 'Bearer realm="visitlens"')
    if isinstance(error, RateLimited | TransientError):
        extra.setdefault("Retry-After", str(error.retry_after_s))
    return JSONResponse(body, status_code=error.status, headers=extra, media_type=PROBLEM_JSON)
