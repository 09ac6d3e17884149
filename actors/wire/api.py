"""The client protocol: request and reply envelopes, method names, parameter checks."""

from __future__ import annotations

import re
from typing import Any

from actors.wire.errors import ApiError, ErrorCode

__all__ = [
    "CONTAINER_ID",
    "IMAGE_METHODS",
    "METHODS",
    "POD_METHODS",
    "PROTOCOL_VERSION",
    "STATE_CHANGING",
    "Params",
    "error_reply",
    "ok_reply",
    "parse_request",
]

PROTOCOL_VERSION = 1

METHODS = (
    "version",
    "health",
    "containers.start",
    "containers.prepare",
    "containers.exec",
    "containers.list",
    "containers.state",
    "containers.signal",
    "containers.remove",
    "containers.pause",
    "containers.resume",
    "containers.update",
    "containers.stdin",
    "containers.close_stdin",
    "containers.resize",
    "containers.reopen_log",
    "containers.logs",
    "containers.stats",
    "checkpoints.create",
    "checkpoints.list",
    "checkpoints.delete",
    "events.replay",
    "images.pull",
    "images.import_begin",
    "images.import_chunk",
    "images.import_cancel",
    "images.import",
    "images.list",
    "images.inspect",
    "images.remove",
    "images.prune",
    "pods.list",
    "pods.inspect",
)
IMAGE_METHODS = frozenset(method for method in METHODS if method.startswith("images."))
"""Requests the bus hands to the ImageService."""
POD_METHODS = frozenset(method for method in METHODS if method.startswith("pods."))
"""Requests the bus hands to the Pods actor (actors/pods/service.py); every other one goes to
the Supervisor."""

STATE_CHANGING = frozenset({
    "containers.start",
    "containers.prepare",
    "containers.exec",
    "containers.signal",
    "containers.remove",
    "containers.pause",
    "containers.resume",
    "containers.update",
    "checkpoints.create",
    "checkpoints.delete",
})
"""Requests logged with who sent them. Not stdin, close_stdin or resize: they are I/O to a
process whose start was logged, and logging them would log every keystroke of a terminal."""

CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z", re.ASCII)
"""Ids are directory names in the state dir: no '/', no '..', bounded length."""

PROCESS_ID = CONTAINER_ID
REQUEST_ID_MAX = 128


def parse_request(body: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """Check the envelope `{"v", "id", "method", "params"}`; return (id, method, params)."""
    request_id = body.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= REQUEST_ID_MAX:
        raise ApiError(ErrorCode.BAD_REQUEST, "'id' must be a string of 1 to 128 characters")
    if body.get("v") != PROTOCOL_VERSION:
        raise ApiError(
            ErrorCode.UNSUPPORTED_VERSION, f"protocol version must be {PROTOCOL_VERSION}"
        )
    method = body.get("method")
    if not isinstance(method, str):
        raise ApiError(ErrorCode.BAD_REQUEST, "'method' must be a string")
    if method not in METHODS:
        raise ApiError(ErrorCode.UNKNOWN_METHOD, f"unknown method {method[:64]!r}")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(ErrorCode.BAD_REQUEST, "'params' must be a map")
    return request_id, method, params


def ok_reply(request_id: str | None, result: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}


def error_reply(request_id: str | None, error: ApiError) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": error.to_wire()}


class Params:
    """Typed access to a request's `params`, raising `invalid_params` on anything off."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._params = params

    def _invalid(self, message: str) -> ApiError:
        return ApiError(ErrorCode.INVALID_PARAMS, message)

    def string(self, name: str, *, required: bool = True, max_len: int = 4096) -> str | None:
        value = self._params.get(name)
        if value is None:
            if required:
                raise self._invalid(f"missing parameter {name!r}")
            return None
        if not isinstance(value, str) or len(value) > max_len:
            raise self._invalid(f"parameter {name!r} must be a string of at most {max_len}")
        return value

    def integer(self, name: str, *, required: bool = False, low: int = 0, high: int = 2**63) -> int | None:
        value = self._params.get(name)
        if value is None:
            if required:
                raise self._invalid(f"missing parameter {name!r}")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._invalid(f"parameter {name!r} must be an integer in [{low}, {high}]")
        return value

    def number(self, name: str) -> float | None:
        value = self._params.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._invalid(f"parameter {name!r} must be a number")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._params.get(name, False)
        if not isinstance(value, bool):
            raise self._invalid(f"parameter {name!r} must be true or false")
        return value

    def container_id(self, name: str = "id") -> str:
        """A required container id, checked against CONTAINER_ID."""
        value = self._params.get(name)
        if not isinstance(value, str) or not CONTAINER_ID.match(value):
            shown = value[:80] if isinstance(value, str) else type(value).__name__
            raise self._invalid(
                f"invalid {name} {shown!r}: use 1 to 64 of A-Z a-z 0-9 _ . -, starting alphanumeric"
            )
        return value

    def optional_container_id(self, name: str = "id") -> str | None:
        return None if self._params.get(name) is None else self.container_id(name)

    def choices(self, name: str, allowed: frozenset[str]) -> frozenset[str] | None:
        """An optional list of strings, each one of `allowed`."""
        value = self._params.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._invalid(f"parameter {name!r} must be a list of strings")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self._invalid(f"parameter {name!r}: unknown {unknown[0][:64]!r} "
                                f"(one of {', '.join(sorted(allowed))})")
        return frozenset(value)

    def labels(self, name: str = "labels") -> dict[str, str]:
        value = self._params.get(name) or {}
        if not isinstance(value, dict) or len(value) > 256:
            raise self._invalid(f"parameter {name!r} must be a map of at most 256 labels")
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str) or not key or len(key) > 256 or len(item) > 4096:
                raise self._invalid("labels must map non-empty strings to strings")
        return dict(value)
