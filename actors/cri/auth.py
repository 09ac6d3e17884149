"""A PullImageRequest's AuthConfig as the credentials of one daemon pull (`images.pull`'s `auth`).

Read as containerd reads it (its ParseAuth): a user name (with its password) first, then an
identity token, then `auth` (base64 of `user:password`); none of them: an anonymous pull.
`server_address` (`https://host[:port][/...]`, or a bare host) names the registry they are
for: they are used there only. A `registry_token` (a bearer token) is refused rather than
dropped in silence: skopeo takes one only on its command line, which every local user can read.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlsplit

import grpc
from cri_api.v1 import api_pb2

from actors.cri.status import Refusal

__all__ = ["pull_credentials"]

DOCKER_HUB_HOSTS = frozenset({"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
"""What docker's config and the kubelet call Docker Hub; containers-auth.json calls it docker.io."""


def _registry(server_address: str) -> str | None:
    """The host[:port] of `server_address` (None when empty)."""
    if not server_address:
        return None
    parts = urlsplit(server_address if "://" in server_address else f"//{server_address}")
    host = parts.netloc
    if not host or any(c in host for c in "@ \t\n"):
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                      f"auth.server_address {server_address[:200]!r} names no registry host")
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def pull_credentials(auth: api_pb2.AuthConfig) -> dict[str, str] | None:
    """The `auth` parameter of the daemon's pull (None: anonymous); Refusal (INVALID_ARGUMENT)
    for an `auth` that is not base64 of `user:password`, or a registry token."""
    registry = _registry(auth.server_address)
    where = {} if registry is None else {"registry": registry}
    if auth.username:
        return {"username": auth.username, "password": auth.password, **where}
    if auth.identity_token:
        return {"identity_token": auth.identity_token, **where}
    if auth.auth:
        try:
            decoded = base64.b64decode(auth.auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "auth.auth is not base64 of user:password") from None
        user, colon, password = decoded.partition(":")
        if not colon or not user:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "auth.auth is not base64 of user:password")
        return {"username": user, "password": password.strip("\x00"), **where}
    if auth.registry_token:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                      "auth.registry_token is not supported: give username and password, auth or identity_token")
    return None
