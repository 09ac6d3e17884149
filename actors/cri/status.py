"""The daemon's answers as gRPC status codes, as the CRI (and containerd, its reference) gives them.

    invalid_params, bad_request            INVALID_ARGUMENT
    not_found                              NOT_FOUND
    already_exists                         ALREADY_EXISTS
    conflict (an image in use, ...)        FAILED_PRECONDITION  (containerd's errdefs.ToGRPC for a conflict)
    busy, storage_full                     RESOURCE_EXHAUSTED
    a timeout (ours or the runtime's)      DEADLINE_EXCEEDED
    actord unreachable or stopping         UNAVAILABLE
    a pull the registry refused            NOT_FOUND when it has no such image or tag, else UNKNOWN:
                                           containerd's pull answers an unauthorized or unreachable
                                           registry with a plain error, which gRPC carries as UNKNOWN
    anything else                          UNKNOWN (INTERNAL for the daemon's internal errors)
"""

from __future__ import annotations

import re

import grpc

from actorctl.client.errors import (
    ActordError,
    AlreadyExists,
    BadRequest,
    Busy,
    Conflict,
    DaemonError,
    InternalError,
    InvalidParams,
    NotFound,
    RuntimeTimeout,
    StorageFull,
    Timeout,
    Unreachable,
)

__all__ = ["Refusal", "pull_status", "status_of"]

CODES: tuple[tuple[type[ActordError], grpc.StatusCode], ...] = (
    (InvalidParams, grpc.StatusCode.INVALID_ARGUMENT),
    (BadRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Busy, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StorageFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (RuntimeTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Timeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (Unreachable, grpc.StatusCode.UNAVAILABLE),
    (InternalError, grpc.StatusCode.INTERNAL),
)

REGISTRY_HAS_NO_SUCH_IMAGE = re.compile(r"manifest unknown|name unknown|not found|no such image", re.IGNORECASE)
"""How skopeo (containers/image) words a registry's 404 for a manifest or a repository."""


class Refusal(Exception):
    """A CRI request refused with a gRPC status code and a message for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def status_of(error: ActordError) -> grpc.StatusCode:
    """The gRPC code of a failed call to the daemon."""
    for kind, code in CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.UNKNOWN


def pull_status(error: ActordError) -> grpc.StatusCode:
    """The gRPC code of a failed pull: a registry's "no such image" is NOT_FOUND, any other
    registry failure (unauthorized, unreachable, nonsense) UNKNOWN, as containerd answers."""
    if isinstance(error, DaemonError) and error.code == "image_error":
        return grpc.StatusCode.NOT_FOUND if REGISTRY_HAS_NO_SUCH_IMAGE.search(error.message) else \
            grpc.StatusCode.UNKNOWN
    return status_of(error)
