"""CURVE for a network control socket: the daemon's secret key and the clients it admits.

An unauthenticated root API is never one flag away: a network `--listen` without both keys is
refused. Errors are ValueErrors naming the option; `actord start` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq.auth

__all__ = ["Curve", "curve_server", "ipc_path"]


def ipc_path(address: str) -> Path | None:
    """The socket file of an ipc:// address; None for other transports."""
    return Path(address.removeprefix("ipc://")) if address.startswith("ipc://") else None


@dataclass(frozen=True)
class Curve:
    """The daemon's CURVE secret key, and the directory of the public certificates it admits."""

    secret_key: bytes
    authorized_keys: Path


def curve_server(listen: str | None, secret_key_file: Path | None, authorized_keys: Path | None) -> Curve | None:
    """The CURVE settings (None: no CURVE); a network address without them is refused."""
    missing = [option for option, given in (
        ("--curve-secret-key FILE (this daemon's certificate, made by zmq.auth.create_certificates)", secret_key_file),
        ("--curve-authorized-keys DIR (the public certificates of the clients to admit)", authorized_keys),
    ) if given is None]
    if listen is not None and ipc_path(listen) is None and missing:
        raise ValueError(f"refusing to listen on {listen} without CURVE: an unauthenticated root API on the "
                         f"network is never one flag away. Missing: {'; '.join(missing)}")
    if secret_key_file is None and authorized_keys is None:
        return None
    if secret_key_file is None or authorized_keys is None:
        raise ValueError(f"CURVE needs both keys; missing: {missing[0]}")
    try:
        _, secret_key = zmq.auth.load_certificate(secret_key_file)
        admitted = zmq.auth.load_certificates(authorized_keys)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot load the CURVE certificates: {exc}") from None
    if secret_key is None or len(secret_key) != 40:
        raise ValueError(f"--curve-secret-key {secret_key_file} holds no CURVE secret key "
                         "(give the .key_secret file, not the public .key)")
    if not admitted:
        raise ValueError(f"--curve-authorized-keys {authorized_keys} holds no public certificate (*.key): "
                         "no client could connect")
    return Curve(secret_key, authorized_keys)
