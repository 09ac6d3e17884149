"""The CRI's ImageService, on the daemon's own image service: every request is one or a few
`images.*` requests made with actorctl's client library (daemonlink.py), so the kubelet and
actorctl see one store.

    PullImage     images.pull, with the request's AuthConfig as that pull's credentials
    ImageStatus   images.inspect (by id, NAME:TAG or NAME@DIGEST), then images.list for every name;
                  no such image: an empty answer, not an error (as the CRI says)
    ListImages    images.list, one CRI image per id; a filter is resolved as ImageStatus resolves
    RemoveImage   the image the name resolves to, every name of it (as containerd); none: success
    ImageFsInfo   the image store's dir: its bytes and inodes (imagefs.py)
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client, NotFound
from actorctl.client.errors import ActordError, DaemonError
from actorctl.client.images import PULL_TIMEOUT
from actors.cri.auth import pull_credentials
from actors.cri.daemonlink import DEFAULT_TIMEOUT, DaemonLink
from actors.cri.imagefs import store_usage
from actors.cri.imagemap import check_image_name, cri_image, group_by_id
from actors.cri.status import Refusal, pull_status, status_of

__all__ = ["ImageServicer"]

Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")
USERS_KEPT = 4096
"""Image ids whose config User is remembered (an id is its config's digest: never stale)."""


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc's abort raises")  # its stubs are untyped: this tells mypy so


def served(handler: Callable[[Servicer, Request, grpc.ServicerContext], Response],
           ) -> Callable[[Servicer, Request, grpc.ServicerContext], Response]:
    """Answer a Refusal, or a failed call to the daemon, with its gRPC status code."""

    @functools.wraps(handler)
    def serve(self: Servicer, request: Request, context: grpc.ServicerContext) -> Response:
        try:
            return handler(self, request, context)
        except Refusal as refusal:
            abort(context, refusal.code, refusal.message)
        except ActordError as exc:
            abort(context, status_of(exc), said(exc))

    return serve


def said(exc: ActordError) -> str:
    """The daemon's words (without the wire code a DaemonError's str adds)."""
    return exc.message if isinstance(exc, DaemonError) else str(exc)


def timeout_for(context: grpc.ServicerContext, longest: float) -> float:
    """How long a call to the daemon may wait: the caller's deadline, at most `longest`."""
    remaining: float | None = context.time_remaining()
    return longest if remaining is None else max(0.001, min(longest, remaining))


class ImageServicer:
    def __init__(self, link: DaemonLink, images_dir: Path, max_pulls: int) -> None:
        self.link = link
        self.images_dir = images_dir
        self.max_pulls = max_pulls
        self.pulls = threading.BoundedSemaphore(max_pulls)
        """Pulls waiting at once, so that pulls never take every gRPC thread from Status and the rest."""
        self.users: dict[str, str] = {}
        """Image id -> its config's User."""

    def _user(self, client: Client, image_id: str) -> str | None:
        """The User of image `image_id`'s config (None: the image is gone)."""
        user = self.users.get(image_id)
        if user is None:
            try:
                user = str((client.inspect_image(image_id).get("config") or {}).get("User") or "")
            except NotFound:
                return None
            if len(self.users) >= USERS_KEPT:
                self.users.clear()
            self.users[image_id] = user
        return user

    @served
    def PullImage(self, request: api_pb2.PullImageRequest, context: grpc.ServicerContext,
                  ) -> api_pb2.PullImageResponse:
        ref = check_image_name(request.image.image, "image.image")
        auth = pull_credentials(request.auth) if request.HasField("auth") else None
        if not self.pulls.acquire(blocking=False):
            raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.max_pulls} pulls are under way through the CRI: try again later")
        try:
            image = self.link.client().pull(ref, auth=auth, timeout=timeout_for(context, PULL_TIMEOUT))
        except ActordError as exc:
            raise Refusal(pull_status(exc), said(exc)) from None
        finally:
            self.pulls.release()
        return api_pb2.PullImageResponse(image_ref=image.id)

    @served
    def ImageStatus(self, request: api_pb2.ImageStatusRequest, context: grpc.ServicerContext,
                    ) -> api_pb2.ImageStatusResponse:
        text = check_image_name(request.image.image, "image.image")
        client = self.link.client()
        client.timeout = timeout_for(context, DEFAULT_TIMEOUT)
        try:
            found: dict[str, Any] = client.inspect_image(text)
        except NotFound:
            return api_pb2.ImageStatusResponse()
        image_id = str(found["id"])
        names = group_by_id(image.raw for image in client.images()).get(image_id) or group_by_id([found])[image_id]
        user = str((found.get("config") or {}).get("User") or "")
        info = {"info": json.dumps(found)} if request.verbose else {}
        return api_pb2.ImageStatusResponse(image=cri_image(names, user), info=info)

    @served
    def ListImages(self, request: api_pb2.ListImagesRequest, context: grpc.ServicerContext,
                   ) -> api_pb2.ListImagesResponse:
        client = self.link.client()
        client.timeout = timeout_for(context, DEFAULT_TIMEOUT)
        groups = group_by_id(image.raw for image in client.images())
        wanted = request.filter.image.image
        if wanted:
            try:
                wanted_id = client.inspect_image(check_image_name(wanted, "filter.image.image"))["id"]
            except NotFound:
                return api_pb2.ListImagesResponse()
            groups = {image_id: names for image_id, names in groups.items() if image_id == wanted_id}
        found = []
        for names in groups.values():
            user = self._user(client, names.id)
            if user is not None:
                found.append(cri_image(names, user))
        return api_pb2.ListImagesResponse(images=found)

    @served
    def RemoveImage(self, request: api_pb2.RemoveImageRequest, context: grpc.ServicerContext,
                    ) -> api_pb2.RemoveImageResponse:
        text = check_image_name(request.image.image, "image.image")
        client = self.link.client()
        client.timeout = timeout_for(context, DEFAULT_TIMEOUT)
        try:
            image_id = str(client.inspect_image(text)["id"])
            client.remove_image(image_id, timeout=timeout_for(context, PULL_TIMEOUT))
        except NotFound:
            pass  # absent is removed, as the CRI says
        return api_pb2.RemoveImageResponse()

    @served
    def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest, context: grpc.ServicerContext,
                    ) -> api_pb2.ImageFsInfoResponse:
        usage = store_usage(self.images_dir)
        return api_pb2.ImageFsInfoResponse(image_filesystems=[api_pb2.FilesystemUsage(
            timestamp=time.time_ns(), fs_id=api_pb2.FilesystemIdentifier(mountpoint=str(self.images_dir)),
            used_bytes=api_pb2.UInt64Value(value=usage.used_bytes),
            inodes_used=api_pb2.UInt64Value(value=usage.inodes_used))])

