"""msgpack encoding with the limits every receiver applies before trusting a frame."""

from __future__ import annotations

from typing import Any

import msgpack

__all__ = [
    "MAX_CLIENT_MESSAGE",
    "MAX_EVENT_MESSAGE",
    "MAX_SHIM_MESSAGE",
    "MAX_STDIN_CHUNK",
    "MAX_SUBSCRIPTION",
    "WireError",
    "pack",
    "unpack",
]

MAX_CLIENT_MESSAGE = 1 << 20
"""Largest request or reply frame; ZeroMQ drops bigger frames (MAXMSGSIZE), so the bus
answers `too_large` instead of sending a reply over it."""

MAX_SUBSCRIPTION = 1 << 10
"""Largest frame an event subscriber may send: a subscription is a topic prefix."""

MAX_EVENT_MESSAGE = 64 << 10
"""Largest body on the event socket, and largest record in the event log: an event's members
are bounded (ids, names), so anything that claims to be larger is damage."""

MAX_SHIM_MESSAGE = 64 << 10
"""Largest message a shim sends or accepts (reports, control messages)."""

MAX_STDIN_CHUNK = MAX_SHIM_MESSAGE - 1024
"""Largest stdin chunk the API takes: it must fit in one shim control message with its envelope."""

MAX_DEPTH = 32
"""Deepest nesting accepted in a decoded message."""


class WireError(ValueError):
    """A frame that cannot be decoded into a message."""


def pack(message: Any) -> bytes:
    """Encode plain data (dicts, lists, str, bytes, numbers, bool, None)."""
    data: bytes = msgpack.packb(message, use_bin_type=True)  # msgpack has no type information
    return data


def unpack(data: bytes, *, limit: int = MAX_CLIENT_MESSAGE) -> dict[str, Any]:
    """Decode one frame into a map with string keys, or raise `WireError`."""
    if len(data) > limit:
        raise WireError(f"message of {len(data)} bytes exceeds the limit of {limit}")
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types, some with empty str()
        raise WireError(f"undecodable message ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise WireError("message is not a map")
    _check_depth(value, 0)
    return value


def _check_depth(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("message nests too deeply")
    if isinstance(value, dict):
        for item in value.values():
            _check_depth(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_depth(item, depth + 1)
