"""`actord start --cri-address`: the unix socket the CRI is served on, or none at all."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DEFAULT_SOCKET_NAME", "OFF", "cri_socket_path"]

DEFAULT_SOCKET_NAME = "cri.sock"
"""The socket in the state dir when no --cri-address is given."""
OFF = "none"
SCHEME = "unix://"
MAX_SOCKET_PATH = 107
"""Bytes of a unix socket's path (sun_path holds 108 with the NUL)."""


def cri_socket_path(address: str | None, state_dir: Path) -> Path | None:
    """The socket file `address` names (None: the CRI is off); `unix:///PATH` (an absolute
    path), `none`, or not given (`<state_dir>/cri.sock`). ValueError says what is wrong."""
    if address is None:
        path = state_dir / DEFAULT_SOCKET_NAME
    elif address == OFF:
        return None
    elif not address.startswith(SCHEME) or not address.removeprefix(SCHEME).startswith("/"):
        raise ValueError(f"--cri-address {address!r}: give unix:///ABSOLUTE/PATH, or none to serve no CRI")
    else:
        path = Path(os.path.normpath(address.removeprefix(SCHEME)))
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(f"--cri-address: the socket path {str(path)!r} is over {MAX_SOCKET_PATH} bytes "
                         "(a unix socket's limit)")
    return path
