"""The CRI's RuntimeService: Version, Status, the pod sandboxes (sandboxes.py), the containers
(containers.py, containerviews.py), and ExecSync, UpdateContainerResources, container and pod
stats (execsync.py, resources.py, stats.py, podstats.py; lookup.py says which containers are the
CRI's); streaming is a later step of the CRI work (issue #19), and every method of its answers
UNIMPLEMENTED, saying so."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actors import __version__
from actors.cri import podstats, resources, stats
from actors.cri.containers import CriContainers
from actors.cri.containerviews import ContainerViews
from actors.cri.daemonlink import DaemonLink
from actors.cri.execsync import ExecSyncs
from actors.cri.images import served, timeout_for
from actors.cri.sandboxes import PodSandboxes
from actors.podnet.readiness import network_status

__all__ = ["RUNTIME_NAME", "RuntimeServicer"]

RUNTIME_NAME = "actord"
KUBELET_API_VERSION = "0.1.0"
"""What Version's `version` carries: the kubelet's runtime API version, as containerd answers."""
RUNTIME_API_VERSION = "v1"
SERVED = ("Version", "Status", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
          "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
          "ContainerStatus", "ListContainers", "ReopenContainerLog", "ExecSync", "UpdateContainerResources",
          "ContainerStats", "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats")
START_TIMEOUT = 60.0
"""Seconds a container's start may take at most (the daemon's --start-timeout bounds it too)."""
METHODS = tuple(method.name for method in api_pb2.DESCRIPTOR.services_by_name["RuntimeService"].methods)


def unimplemented(method: str) -> Callable[[Any, grpc.ServicerContext], None]:
    """A handler that answers UNIMPLEMENTED naming `method` (context.abort raises)."""

    def refuse(_: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"actord does not serve RuntimeService/{method} yet: it serves {', '.join(SERVED)} and the "
                      "ImageService; streaming (Exec, Attach, PortForward) comes later (docs/cri.md)")

    return refuse


class RuntimeServicer:
    """Version, Status, the pod sandboxes and the containers; any other RuntimeService method (looked up by the
    generated registration by name) is `unimplemented`."""

    def __init__(self, pods: PodSandboxes, containers: CriContainers, cni_conf_dir: Path,
                 cni_bin_dirs: Sequence[Path], *, link: DaemonLink) -> None:
        self.pods = pods
        self.containers = containers
        self.views = ContainerViews(containers)
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

    @served
    def CreateContainer(self, request: api_pb2.CreateContainerRequest,
                        context: grpc.ServicerContext) -> api_pb2.CreateContainerResponse:
        return api_pb2.CreateContainerResponse(container_id=self.containers.create(request))

    @served
    def StartContainer(self, request: api_pb2.StartContainerRequest,
                       context: grpc.ServicerContext) -> api_pb2.StartContainerResponse:
        self.containers.start(request.container_id, timeout_for(context, START_TIMEOUT))
        return api_pb2.StartContainerResponse()

    @served
    def StopContainer(self, request: api_pb2.StopContainerRequest,
                      context: grpc.ServicerContext) -> api_pb2.StopContainerResponse:
        self.containers.stop(request.container_id, max(0, request.timeout))
        return api_pb2.StopContainerResponse()

    @served
    def RemoveContainer(self, request: api_pb2.RemoveContainerRequest,
                        context: grpc.ServicerContext) -> api_pb2.RemoveContainerResponse:
        self.containers.remove(request.container_id)
        return api_pb2.RemoveContainerResponse()

    @served
    def ContainerStatus(self, request: api_pb2.ContainerStatusRequest,
                        context: grpc.ServicerContext) -> api_pb2.ContainerStatusResponse:
        return self.views.status(request.container_id, request.verbose)

    @served
    def ListContainers(self, request: api_pb2.ListContainersRequest,
                       context: grpc.ServicerContext) -> api_pb2.ListContainersResponse:
        return api_pb2.ListContainersResponse(containers=self.views.list(request))

    @served
    def ReopenContainerLog(self, request: api_pb2.ReopenContainerLogRequest,
                           context: grpc.ServicerContext) -> api_pb2.ReopenContainerLogResponse:
        self.containers.reopen_log(request.container_id)
        return api_pb2.ReopenContainerLogResponse()

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
