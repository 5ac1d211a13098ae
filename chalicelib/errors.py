"""Errors that reach callers: each class carries its HTTP status and code.

Domains subclass these (`class SoldOutError(ConflictError): code = "SOLD_OUT"`)
and raise them; `chalicelib.http` turns them into responses in one place.
"""

from __future__ import annotations

__all__ = [
    "SiyuError",
    "InvalidRequestError",
    "UnauthenticatedError",
    "ForbiddenError",
    "NotFoundError",
    "MethodNotAllowedError",
    "ConflictError",
    "IdempotencyKeyReusedError",
    "UnsupportedMediaTypeError",
    "UpstreamUnavailableError",
    "ThrottledError",
]


class SiyuError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    default_message = "internal error"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        super().__init__(self.message)

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidRequestError(SiyuError):
    status = 400
    code = "INVALID_REQUEST"

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{field}: {problem}")


class UnauthenticatedError(SiyuError):
    status = 401
    code = "UNAUTHENTICATED"
    default_message = "a valid bearer token is required"


class ForbiddenError(SiyuError):
    status = 403
    code = "FORBIDDEN"
    default_message = "not allowed for this caller"


class NotFoundError(SiyuError):
    status = 404
    code = "NOT_FOUND"
    default_message = "not found"


class MethodNotAllowedError(SiyuError):
    status = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "this path does not take this method"

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = sorted(allowed)
        super().__init__(f"this path takes {', '.join(self.allowed)}")


class ConflictError(SiyuError):
    """A business rule said no."""

    status = 409
    code = "CONFLICT"
    default_message = "the request conflicts with the current state"


class IdempotencyKeyReusedError(SiyuError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "this Idempotency-Key was used with a different request"


class UnsupportedMediaTypeError(SiyuError):
    status = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "the body must be JSON (Content-Type: application/json)"


class UpstreamUnavailableError(SiyuError):
    status = 503
    code = "UPSTREAM_UNAVAILABLE"
    default_message = "a partner service is unavailable, try again"


class ThrottledError(SiyuError):
    """DynamoDB kept refusing for capacity after every retry the request had time for."""

    status = 503
    code = "TRY_AGAIN"
    default_message = "the service is busy right now, try again in a moment"
    retry_after_seconds = 1
