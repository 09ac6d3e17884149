"""The CRI's RuntimeService: Version and Status now; pods, containers and streaming are later
steps of the CRI work, and every method of theirs answers UNIMPLEMENTED, saying so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actors import __version__

__all__ = ["RUNTIME_NAME", "RuntimeServicer"]

RUNTIME_NAME = "actord"
KUBELET_API_VERSION = "0.1.0"
"""What Version's `version` carries: the kubelet's runtime API version, as containerd answers."""
RUNTIME_API_VERSION = "v1"
SERVED = ("Version", "Status")
METHODS = tuple(method.name for method in api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods)
NETWORK_NOT_READY = "NetworkPluginNotReady"
NETWORK_MESSAGE = "actord runs no CNI network yet: pods and their networks are not served (docs/cri.md)"


def unimplemented(method: str) -> Callable[[Any, grpc.ServicerContext], None]:
    """A handler that answers UNIMPLEMENTED naming `method` (context.abort raises)."""

    def refuse(_: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"actord does not serve RuntimeService/{method} yet: it serves {', '.join(SERVED)} and the "
                      "ImageService; pods, containers and streaming come later (docs/cri.md)")

    return refuse


class RuntimeServicer:
    """Version and Status; any other RuntimeService method (looked up by the generated
    registration by name) is `unimplemented`."""

    def Version(self, request: api_pb2.VersionRequest, context: grpc.ServicerContext) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version=KUBELET_API_VERSION, runtime_name=RUNTIME_NAME,
                                       runtime_version=__version__, runtime_api_version=RUNTIME_API_VERSION)

    def Status(self, request: api_pb2.StatusRequest, context: grpc.ServicerContext) -> api_pb2.StatusResponse:
        """RuntimeReady: this server answers on the daemon's behalf, so the daemon runs (containers
        through the CRI are a later step). NetworkReady is false until CNI exists."""
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=[
            api_pb2.RuntimeCondition(type="RuntimeReady", status=True),
            api_pb2.RuntimeCondition(type="NetworkReady", status=False, reason=NETWORK_NOT_READY,
                                     message=NETWORK_MESSAGE),
        ]))

    def __getattr__(self, name: str) -> Callable[[Any, grpc.ServicerContext], None]:
        if name in METHODS:
            return unimplemented(name)
        raise AttributeError(name)
