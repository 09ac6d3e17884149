"""Registry credentials given with one pull (`images.pull`'s `auth`), handed to skopeo unseen.

A pull's credentials never touch a file system and never appear on a command line (anyone can
read every process's `/proc/<pid>/cmdline`): they become a containers-auth.json(5) in a memfd
(an anonymous file in memory), which skopeo reads as `--authfile /proc/self/fd/N` through an
fd it inherits, and which is gone when the last fd to it closes. The daemon's own
`--auth-file` is merged in, so a pull with credentials for one registry keeps the daemon's for
the others (mirrors included); the given ones win for their registry.

What a client may give: a user name and password, or an identity token (an OAuth2 refresh
token, containers/image's `identitytoken`); and the registry they are for (default: the
registry the image is pulled from). A bearer registry token has no place in auth.json
(skopeo takes one only on its command line), so it is not taken.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.images.errors import ImageError
from actors.wire import ApiError, ErrorCode

__all__ = ["Credentials", "auth_file_fd"]

FIELDS = ("username", "password", "identity_token", "registry")
MAX_FIELD = 16 * 1024
"""Bytes of one credential field: a token is a few KiB at most."""


@dataclass(frozen=True, repr=False)
class Credentials:
    """A pull's credentials; `repr` and `str` never show them."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry: str | None = None
    """The registry (host[:port]) they are for; None: the one the image is pulled from."""

    def __repr__(self) -> str:
        shown = "identity token" if self.identity_token else f"user {self.username!r}"
        return f"Credentials({shown} for {self.registry or 'the image registry'})"

    __str__ = __repr__

    @classmethod
    def from_wire(cls, value: object) -> Credentials:
        """The `auth` parameter of `images.pull`: `{"username", "password"}` or `{"identity_token"}`,
        with an optional `registry`. `invalid_params` naming what is wrong (never a value)."""
        if not isinstance(value, dict):
            raise ApiError(ErrorCode.INVALID_PARAMS, "parameter 'auth' must be a map")
        unknown = sorted(str(key)[:32] for key in value if key not in FIELDS)
        if unknown:
            raise ApiError(ErrorCode.INVALID_PARAMS, f"parameter 'auth': unknown key {unknown[0]!r} "
                                                     f"(one of {', '.join(FIELDS)})")
        for key, item in value.items():
            if not isinstance(item, str) or len(item) > MAX_FIELD:
                raise ApiError(ErrorCode.INVALID_PARAMS, f"parameter 'auth': {key!r} must be a string of at "
                                                         f"most {MAX_FIELD}")
        found = cls(username=value.get("username", ""), password=value.get("password", ""),
                    identity_token=value.get("identity_token", ""), registry=value.get("registry") or None)
        if bool(found.username) == bool(found.identity_token):
            raise ApiError(ErrorCode.INVALID_PARAMS, "parameter 'auth': give either 'username' (and 'password') "
                                                     "or 'identity_token'")
        if found.registry is not None and ("/" in found.registry or not found.registry.strip()):
            raise ApiError(ErrorCode.INVALID_PARAMS, "parameter 'auth': 'registry' is a host[:port], without a "
                                                     "scheme or path")
        return found

    def to_wire(self) -> dict[str, str]:
        """The `auth` parameter that `from_wire` reads back."""
        fields = {"username": self.username, "password": self.password, "identity_token": self.identity_token,
                  "registry": self.registry or ""}
        return {key: value for key, value in fields.items() if value}

    def fingerprint(self) -> str:
        """A digest that tells two pulls' credentials apart (pulls share a download only with the
        same ones), without keeping them."""
        return hashlib.sha256(json.dumps(self.to_wire(), sort_keys=True).encode()).hexdigest()

    def auth_entry(self) -> dict[str, str]:
        """This registry's entry of a containers-auth.json."""
        if self.identity_token:
            return {"identitytoken": self.identity_token}
        return {"auth": base64.b64encode(f"{self.username}:{self.password}".encode()).decode()}


def auth_json(credentials: Credentials, registry: str, base: Path | None) -> bytes:
    """A containers-auth.json: the `base` file's entries (the daemon's --auth-file), and the
    credentials for their registry (`registry` when they name none)."""
    document: dict[str, Any] = {}
    if base is not None:
        try:
            loaded = json.loads(base.read_bytes())
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot read the auth file {base}: {exc}") from None
        if isinstance(loaded, dict):
            document = loaded
    auths = document.get("auths")
    document["auths"] = {**(auths if isinstance(auths, dict) else {}),
                         credentials.registry or registry: credentials.auth_entry()}
    return json.dumps(document).encode()


def auth_file_fd(credentials: Credentials, registry: str, base: Path | None) -> int:
    """An fd (not inheritable: pass it with `pass_fds`) of a memfd holding `auth_json`, read from
    its start; skopeo reads it as /proc/self/fd/<fd>. The caller closes it."""
    fd = os.memfd_create("actord-pull-auth.json", os.MFD_CLOEXEC)
    try:
        data = auth_json(credentials, registry, base)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    except BaseException:
        os.close(fd)
        raise
    return fd
