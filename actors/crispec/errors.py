"""The one error of the CRI spec: a kind the CRI layer maps onto a gRPC status code, and a
message naming the field at fault."""

from __future__ import annotations

import enum

__all__ = ["CrispecError", "ErrorKind", "invalid", "not_found"]


class ErrorKind(enum.Enum):
    """What went wrong, named as gRPC's status codes are (`grpc.StatusCode[kind.value]`)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    """Bad input: a field that is malformed, contradicts another, or asks for what the host lacks."""
    NOT_FOUND = "NOT_FOUND"
    """Something the input names is absent: a user name, a seccomp profile, a device."""


class CrispecError(Exception):
    """A container config that cannot become a runtime spec."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def invalid(message: str) -> CrispecError:
    return CrispecError(ErrorKind.INVALID_ARGUMENT, message)


def not_found(message: str) -> CrispecError:
    return CrispecError(ErrorKind.NOT_FOUND, message)
