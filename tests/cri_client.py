"""A CRI v1 client for the tests: the generated stubs of `cri_api` over a daemon's unix socket,
as the kubelet and crictl speak to it."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

__all__ = ["CriClient", "grpc_error", "image_spec"]

CALL_TIMEOUT = 60.0
"""Seconds a test's call may take (a pull from the local registry takes well under one)."""


def image_spec(name: str) -> api_pb2.ImageSpec:
    return api_pb2.ImageSpec(image=name)


def grpc_error(call: Any, *args: Any) -> grpc.RpcError:
    """The RpcError `call(*args)` (a stub's method, or CriClient's) raises (AssertionError if it succeeds)."""
    try:
        answer = call(*args, timeout=CALL_TIMEOUT) if isinstance(call, grpc.UnaryUnaryMultiCallable) else call(*args)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"expected a gRPC error, got {answer}")


class CriClient:
    """RuntimeService and ImageService stubs on one channel to `socket`; close it after use."""

    def __init__(self, socket: Path) -> None:
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime: Any = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images: Any = api_pb2_grpc.ImageServiceStub(self.channel)

    def pull(self, name: str, auth: api_pb2.AuthConfig | None = None) -> str:
        """The image id PullImage answers."""
        answer: api_pb2.PullImageResponse = self.images.PullImage(
            api_pb2.PullImageRequest(image=image_spec(name), auth=auth), timeout=CALL_TIMEOUT)
        return answer.image_ref

    def status(self, name: str) -> api_pb2.Image | None:
        """ImageStatus's image, None when it has none."""
        answer: api_pb2.ImageStatusResponse = self.images.ImageStatus(
            api_pb2.ImageStatusRequest(image=image_spec(name)), timeout=CALL_TIMEOUT)
        return answer.image if answer.HasField("image") else None

    def list(self, name: str | None = None) -> list[api_pb2.Image]:
        request = api_pb2.ListImagesRequest()
        if name is not None:
            request.filter.image.image = name
        answer: api_pb2.ListImagesResponse = self.images.ListImages(request, timeout=CALL_TIMEOUT)
        return list(answer.images)

    def remove(self, name: str) -> None:
        self.images.RemoveImage(api_pb2.RemoveImageRequest(image=image_spec(name)), timeout=CALL_TIMEOUT)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
