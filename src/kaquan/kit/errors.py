"""The one error family every layer raises and the web layer renders.

A `DomainError` carries its HTTP status and a stable machine-readable `code`;
`web.errors` turns it into `{"error": {"code", "message", "details"}}`.
"""

from typing import Any, ClassVar


class DomainError(Exception):
    """A rule was broken by the caller's input or the state of the world."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadInput(DomainError):
    status = 400
    code = "bad_input"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class IdempotencyConflict(DomainError):
    """The idempotency key was used before with a different request body."""

    status = 409
    code = "idempotency_conflict"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class Busy(DomainError):
    """A lock could not be taken within its bounded retries: an honest 'try again'."""

    status = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after
