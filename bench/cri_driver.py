"""The pod bench's CRI client: the same calls, through the generated `cri_api.v1` stubs, for
every runtime measured. A pod is RunPodSandbox + CreateContainer (the image's `sleep 3600`) +
StartContainer, timed end to end, with the sandbox's own share timed apart (the figure every
runtime can give while one of them does not serve containers yet)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

__all__ = ["BUSYBOX", "WORKLOAD", "CriDriver", "PodTimes"]

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
"""The container image, as the CRI kit's registry serves it (critest's default image)."""
WORKLOAD = ["sleep", "3600"]
"""The container's command: a process that only waits, so the runtime's own cost shows."""
CALL_TIMEOUT = 120.0
NAMESPACE = "cribench"


@dataclass(frozen=True)
class PodTimes:
    """Seconds one pod took: its sandbox, and all of it (None when containers are not served)."""

    sandbox: float
    total: float | None


class CriDriver:
    """RuntimeService and ImageService stubs on a channel to one runtime's CRI socket."""

    def __init__(self, name: str, socket: str) -> None:
        self.name = name
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.runtime: Any = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images: Any = api_pb2_grpc.ImageServiceStub(self.channel)
        self.serves_containers = True
        """False once CreateContainer answered UNIMPLEMENTED: then a pod is its sandbox only."""

    def wait_ready(self, timeout: float = 30) -> str:
        """Wait until the runtime answers Version; its name and version."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.runtime.Version(api_pb2.VersionRequest(), timeout=5)
                return f"{answer.runtime_name} {answer.runtime_version}"
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pull(self, image: str) -> None:
        self.images.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image)), timeout=CALL_TIMEOUT)

    def start_pod(self, name: str) -> PodTimes:
        """Run the pod `name` and its container; how long it took."""
        metadata = api_pb2.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace=NAMESPACE, attempt=0)
        config = api_pb2.PodSandboxConfig(metadata=metadata, hostname=name, linux=api_pb2.LinuxPodSandboxConfig())
        began = time.perf_counter()
        pod_id = self.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config),
                                            timeout=CALL_TIMEOUT).pod_sandbox_id
        sandbox = time.perf_counter() - began
        if not self.serves_containers:
            return PodTimes(sandbox, None)
        container = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="sleep", attempt=0),
                                            image=api_pb2.ImageSpec(image=BUSYBOX), command=WORKLOAD,
                                            linux=api_pb2.LinuxContainerConfig())
        try:
            container_id = self.runtime.CreateContainer(
                api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, config=container, sandbox_config=config),
                timeout=CALL_TIMEOUT).container_id
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            self.serves_containers = False
            return PodTimes(sandbox, None)
        self.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=container_id), timeout=CALL_TIMEOUT)
        return PodTimes(sandbox, time.perf_counter() - began)

    def pod_ids(self) -> list[str]:
        answer = self.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=CALL_TIMEOUT)
        return [item.id for item in answer.items]

    def remove_pods(self) -> list[str]:
        """Stop and remove every pod (their containers go with them); the errors met, one line each."""
        errors = []
        for pod_id in self.pod_ids():
            for call, request in ((self.runtime.StopPodSandbox, api_pb2.StopPodSandboxRequest),
                                  (self.runtime.RemovePodSandbox, api_pb2.RemovePodSandboxRequest)):
                try:
                    call(request(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)
                except grpc.RpcError as exc:
                    errors.append(f"{self.name}: {request.__name__[:-7]} {pod_id[:12]}: {exc.details()}")
        return errors

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()
