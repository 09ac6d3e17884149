"""The wire format: codec, limits, error codes, message types. One place for all of it."""

from actors.wire.codec import MAX_CLIENT_MESSAGE, MAX_SHIM_MESSAGE, WireError, pack, unpack
from actors.wire.errors import ApiError, ErrorCode

__all__ = [
    "MAX_CLIENT_MESSAGE",
    "MAX_SHIM_MESSAGE",
    "ApiError",
    "ErrorCode",
    "WireError",
    "pack",
    "unpack",
]
