"""What a call can fail with: one exception class per wire error code, and two for no answer.

    ActordError                     every failure of the library (alias: ClientError)
    ├── DaemonError                 the daemon answered with an error; `.code`, `.message`
    │   ├── BadRequest              bad_request
    │   ├── UnsupportedVersion      unsupported_version
    │   ├── UnknownMethod           unknown_method
    │   ├── InvalidParams           invalid_params
    │   ├── TooLarge                too_large
    │   ├── NotFound                not_found
    │   ├── AlreadyExists           already_exists
    │   ├── Conflict                conflict
    │   ├── RuntimeFailure          runtime_error (runc failed)
    │   ├── RuntimeTimeout          timeout (runc took too long; the daemon gave up on it)
    │   ├── Busy                    busy
    │   ├── StorageFull             storage_full
    │   ├── ImageFailure            image_error (a pull, an import or an image's bundle failed)
    │   └── InternalError           internal, and any code this library does not know
    ├── Unreachable                 nothing answers at the address (or permission denied)
    └── Timeout                     no answer in time; the daemon may still complete the request
                                    (alias: CallTimeout)

The codes are `actors.wire.errors.ErrorCode`'s; this module spells them again so that it
needs nothing but the standard library.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ActordError",
    "AlreadyExists",
    "BadRequest",
    "Busy",
    "CallTimeout",
    "ClientError",
    "Conflict",
    "DaemonError",
    "ImageFailure",
    "InternalError",
    "InvalidParams",
    "NotFound",
    "RuntimeFailure",
    "RuntimeTimeout",
    "StorageFull",
    "Timeout",
    "TooLarge",
    "UnknownMethod",
    "Unreachable",
    "UnsupportedVersion",
    "daemon_error",
]


class ActordError(Exception):
    """A call that did not succeed: the daemon refused it, or could not be reached or did not answer."""


ClientError = ActordError
"""The name actorctl has always caught."""


class DaemonError(ActordError):
    """The daemon answered with an error. `code` is the wire code (`not_found`, ...), `message`
    the daemon's explanation. Catch a subclass for one code, this class for any."""

    CODE: ClassVar[str | None] = None
    """The wire code a subclass stands for."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class BadRequest(DaemonError):
    """The request envelope was malformed (not something the library sends)."""

    CODE = "bad_request"


class UnsupportedVersion(DaemonError):
    """The daemon speaks another protocol version."""

    CODE = "unsupported_version"


class UnknownMethod(DaemonError):
    """The daemon has no such method (an older daemon?)."""

    CODE = "unknown_method"


class InvalidParams(DaemonError):
    """A parameter is missing, mistyped or out of range; the message names it."""

    CODE = "invalid_params"


class TooLarge(DaemonError):
    """The request or its reply exceeds the 1 MiB frame limit."""

    CODE = "too_large"


class NotFound(DaemonError):
    """No such container, process or checkpoint."""

    CODE = "not_found"


class AlreadyExists(DaemonError):
    """The container id or process name is taken."""

    CODE = "already_exists"


class Conflict(DaemonError):
    """The container is not in a state that allows this (paused, exited, stopping...)."""

    CODE = "conflict"


class RuntimeFailure(DaemonError):
    """runc (or CRIU) failed; the message carries its reason."""

    CODE = "runtime_error"


class RuntimeTimeout(DaemonError):
    """runc did not finish within the daemon's deadline (not `Timeout`: the daemon did answer)."""

    CODE = "timeout"


class Busy(DaemonError):
    """The daemon is short of a resource (file descriptors); try again later."""

    CODE = "busy"


class StorageFull(DaemonError):
    """The state dir's filesystem is full: starts, execs, pauses and checkpoints are refused."""

    CODE = "storage_full"


class ImageFailure(DaemonError):
    """An image cannot be pulled, imported or made a container's root: the registry's or the
    archive's problem, as skopeo or the daemon words it (also raised before asking the daemon,
    for a reference that cannot be one)."""

    CODE = "image_error"


class InternalError(DaemonError):
    """The daemon failed unexpectedly (its log says more), or answered with an unknown code."""

    CODE = "internal"


class Unreachable(ActordError):
    """Nothing answers at the address: no daemon, no socket, permission denied, or a CURVE key it refuses."""


class Timeout(ActordError):
    """The daemon did not answer in time (it may still complete the request)."""


CallTimeout = Timeout
"""The name actorctl has always caught."""

_BY_CODE: dict[str, type[DaemonError]] = {
    cls.CODE: cls for cls in DaemonError.__subclasses__() if cls.CODE is not None
}


def daemon_error(code: str, message: str) -> DaemonError:
    """The exception for an error reply: the class of its code (InternalError for an unknown one)."""
    return _BY_CODE.get(code, InternalError)(code, message)
