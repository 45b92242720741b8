"""The error taxonomy: one base, permanent errors (4xx, never retried) and transient ones (5xx).

Leaves also subclass a builtin so callers that only know Python's errors still catch them, and
carry the offending field so the HTTP layer can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one input field; ``field`` is a dotted path such as ``body.site_id``."""

    field: str
    message: str


class VisitlensError(Exception):
    """Base of every error visitlens raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def problems(self) -> list[FieldProblem]:
        return [FieldProblem(self.field, self.message)] if self.field else []


class PermanentError(VisitlensError):
    """The request can never succeed as sent: 4xx, a broker must not retry it."""

    status = 400
    code = "bad_request"


class InvalidInput(PermanentError, ValueError):
    """Input that failed validation; may carry several field problems at once."""

    status = 422
    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problems: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self._problems = problems or []

    @property
    def problems(self) -> list[FieldProblem]:
        return self._problems or super().problems


class MalformedBody(PermanentError, ValueError):
    status = 400
    code = "malformed_body"


class UnsupportedMediaType(PermanentError, ValueError):
    status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(PermanentError, ValueError):
    status = 413
    code = "payload_too_large"


class Unauthenticated(PermanentError, PermissionError):
    """No credentials, or credentials that do not verify: 401."""

    status = 401
    code = "unauthenticated"


class Forbidden(PermanentError, PermissionError):
    """Verified caller without the role or scope for this action: 403."""

    status = 403
    code = "forbidden"


class NotFound(PermanentError, LookupError):
    status = 404
    code = "not_found"


class MethodNotAllowed(PermanentError):
    status = 405
    code = "method_not_allowed"


class Conflict(PermanentError):
    """A uniqueness or state conflict (duplicate slug, e-mail already used …): 409."""

    status = 409
    code = "conflict"


class RateLimited(VisitlensError):
    """Over the configured request rate: 429 with Retry-After; retrying later succeeds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TransientError(VisitlensError):
    """A dependency failed in a way that may pass: 5xx, the caller or broker retries."""

    status = 503
    code = "unavailable"
    retry_after_s = 1
    """Sent as Retry-After: an outage is usually a restart, and senders back off on their own."""


class Busy(TransientError):
    """The database chose this transaction as a deadlock or serialisation victim, or cancelled
    it: running it again at once usually succeeds."""


class StackError(VisitlensError, RuntimeError):
    """The embedded stack could not be started, reached or stopped."""

    code = "stack_error"


class ConfigurationError(VisitlensError, ValueError):
    code = "configuration_error"


@dataclass(slots=True)
class ProblemList:
    """Collects field problems so validation reports all of them at once."""

    items: list[FieldProblem] = field(default_factory=list)

    def add(self, field_path: str, message: str) -> None:
        self.items.append(FieldProblem(field_path, message))

    def raise_if_any(self, message: str = "invalid input") -> None:
        if self.items:
            raise InvalidInput(message, problems=list(self.items))
