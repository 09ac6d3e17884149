"""Error codes carried in replies, and the exception that carries one inside the daemon."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "ErrorCode"]


class ErrorCode:
    """String error codes of the request/reply protocol."""

    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_METHOD = "unknown_method"
    INVALID_PARAMS = "invalid_params"
    TOO_LARGE = "too_large"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    CONFLICT = "conflict"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    BUSY = "busy"
    STORAGE_FULL = "storage_full"
    IMAGE_ERROR = "image_error"
    INTERNAL = "internal"


class ApiError(Exception):
    """A failure that becomes an error reply `{"code", "message"}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_wire(self) -> dict[str, str]:
        """The `error` member of a reply."""
        return {"code": self.code, "message": self.message}

    @classmethod
    def from_wire(cls, error: dict[str, Any], fallback: str) -> ApiError:
        """The error a `to_wire` map carries (a worker's, back in the Supervisor)."""
        return cls(str(error.get("code", ErrorCode.INTERNAL)), str(error.get("message", fallback)))
