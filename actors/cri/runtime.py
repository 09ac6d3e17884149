"""The CRI's RuntimeService: Version, Status, the pod sandboxes (sandboxes.py), and ExecSync,
UpdateContainerResources, container and pod stats (execsync.py, resources.py, stats.py,
podstats.py) on the CRI containers another step starts (lookup.py says which they are); the
containers' lifecycle and streaming are later steps of the CRI work, and every method of theirs answers
UNIMPLEMENTED, saying so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actors import __version__
from actors.cri import podstats, resources, stats
from actors.cri.daemonlink import DaemonLink
from actors.cri.execsync import ExecSyncs
from actors.cri.images import served
from actors.cri.sandboxes import PodSandboxes
from actors.podnet.readiness import network_status

__all__ = ["RUNTIME_NAME", "RuntimeServicer"]

RUNTIME_NAME = "actord"
KUBELET_API_VERSION = "0.1.0"
"""What Version's `version` carries: the kubelet's runtime API version, as containerd answers."""
RUNTIME_API_VERSION = "v1"
SERVED = ("Version", "Status", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
          "ListPodSandbox", "ExecSync", "UpdateContainerResources", "ContainerStats", "ListContainerStats",
          "PodSandboxStats", "ListPodSandboxStats")
METHODS = tuple(method.name for method in api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods)


def unimplemented(method: str) -> Callable[[Any, grpc.ServicerContext], None]:
    """A handler that answers UNIMPLEMENTED naming `method` (context.abort raises)."""

    def refuse(_: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"actord does not serve RuntimeService/{method} yet: it serves {', '.join(SERVED)} and the "
                      "ImageService; the containers' lifecycle and streaming come later (docs/cri.md)")

    return refuse


class RuntimeServicer:
    """Version, Status and the pod sandboxes; any other RuntimeService method (looked up by the
    generated registration by name) is `unimplemented`."""

    def __init__(self, pods: PodSandboxes, cni_conf_dir: Path, cni_bin_dirs: Sequence[Path], *,
                 link: DaemonLink) -> None:
        self.pods = pods
        self.cni_conf_dir = cni_conf_dir
        self.cni_bin_dirs = tuple(cni_bin_dirs)
        self.link = link
        self.exec_syncs = ExecSyncs(link)

    def Version(self, request: api_pb2.VersionRequest, context: grpc.ServicerContext) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version=KUBELET_API_VERSION, runtime_name=RUNTIME_NAME,
                                       runtime_version=__version__, runtime_api_version=RUNTIME_API_VERSION)

    def Status(self, request: api_pb2.StatusRequest, context: grpc.ServicerContext) -> api_pb2.StatusResponse:
        """RuntimeReady: this server answers on the daemon's behalf, so the daemon runs.
        NetworkReady: the CNI config loads and its plugins are there (actors/podnet/readiness.py)."""
        network = network_status(self.cni_conf_dir, self.cni_bin_dirs)
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=[
            api_pb2.RuntimeCondition(type="RuntimeReady", status=True),
            api_pb2.RuntimeCondition(type="NetworkReady", status=network.ready, reason=network.reason,
                                     message=network.message),
        ]))

    @served
    def RunPodSandbox(self, request: api_pb2.RunPodSandboxRequest,
                      context: grpc.ServicerContext) -> api_pb2.RunPodSandboxResponse:
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=self.pods.run(request, context))

    @served
    def StopPodSandbox(self, request: api_pb2.StopPodSandboxRequest,
                       context: grpc.ServicerContext) -> api_pb2.StopPodSandboxResponse:
        self.pods.stop(request.pod_sandbox_id)
        return api_pb2.StopPodSandboxResponse()

    @served
    def RemovePodSandbox(self, request: api_pb2.RemovePodSandboxRequest,
                         context: grpc.ServicerContext) -> api_pb2.RemovePodSandboxResponse:
        self.pods.remove(request.pod_sandbox_id)
        return api_pb2.RemovePodSandboxResponse()

    @served
    def PodSandboxStatus(self, request: api_pb2.PodSandboxStatusRequest,
                         context: grpc.ServicerContext) -> api_pb2.PodSandboxStatusResponse:
        return self.pods.status(request.pod_sandbox_id, request.verbose)

    @served
    def ListPodSandbox(self, request: api_pb2.ListPodSandboxRequest,
                       context: grpc.ServicerContext) -> api_pb2.ListPodSandboxResponse:
        return api_pb2.ListPodSandboxResponse(items=self.pods.list(request))

    # -- a CRI container's use: exec, resources, stats; pod stats (execsync.py, resources.py, stats.py,
    # podstats.py) --

    @served
    def ExecSync(self, request: api_pb2.ExecSyncRequest, context: grpc.ServicerContext) -> api_pb2.ExecSyncResponse:
        return self.exec_syncs.run(request, context)

    @served
    def UpdateContainerResources(self, request: api_pb2.UpdateContainerResourcesRequest,
                                 context: grpc.ServicerContext) -> api_pb2.UpdateContainerResourcesResponse:
        resources.update_resources(self.link.client(), request)
        return api_pb2.UpdateContainerResourcesResponse()

    @served
    def ContainerStats(self, request: api_pb2.ContainerStatsRequest,
                       context: grpc.ServicerContext) -> api_pb2.ContainerStatsResponse:
        return api_pb2.ContainerStatsResponse(stats=stats.container_stats(self.link.client(), request.container_id))

    @served
    def ListContainerStats(self, request: api_pb2.ListContainerStatsRequest,
                           context: grpc.ServicerContext) -> api_pb2.ListContainerStatsResponse:
        return api_pb2.ListContainerStatsResponse(stats=stats.list_container_stats(self.link.client(), request.filter))

    @served
    def PodSandboxStats(self, request: api_pb2.PodSandboxStatsRequest,
                        context: grpc.ServicerContext) -> api_pb2.PodSandboxStatsResponse:
        return api_pb2.PodSandboxStatsResponse(
            stats=podstats.pod_stats(self.link.client(), self.pods.store, request.pod_sandbox_id))

    @served
    def ListPodSandboxStats(self, request: api_pb2.ListPodSandboxStatsRequest,
                            context: grpc.ServicerContext) -> api_pb2.ListPodSandboxStatsResponse:
        return api_pb2.ListPodSandboxStatsResponse(
            stats=podstats.list_pod_stats(self.link.client(), self.pods.store, request.filter))

    def __getattr__(self, name: str) -> Callable[[Any, grpc.ServicerContext], None]:
        if name in METHODS:
            return unimplemented(name)
        raise AttributeError(name)
