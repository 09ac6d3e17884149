"""The container's namespaces: the pod's network, IPC and UTS, its PID namespace (the pod's,
its own, another container's, or the host's), and a mount namespace of its own.

containerd joins every namespace of the sandbox container (`WithPodNamespaces`); a pod on the
host's network has the host's network and UTS namespaces, a host-IPC pod the host's IPC, a
host-PID pod the host's PID namespace: those are left out of the spec (runc then stays in its
own, the host's). The hostname is the pod's UTS namespace's (set by the pod), and HOSTNAME in
the environment (`process`); no cgroup namespace on a cgroup v1 host, as containerd.
"""

from __future__ import annotations

from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid
from actors.crispec.pod import PodFacts

__all__ = ["namespaces"]

NODE = api_pb2.NamespaceMode.NODE
CONTAINER = api_pb2.NamespaceMode.CONTAINER
TARGET = api_pb2.NamespaceMode.TARGET


def namespaces(context: api_pb2.LinuxContainerSecurityContext, pod_config: api_pb2.PodSandboxConfig,
               pod: PodFacts, *, target_pid: int | None, unified_cgroup: bool) -> list[dict[str, Any]]:
    """The spec's `linux.namespaces`."""
    pod_options = pod_config.linux.security_context.namespace_options
    options = context.namespace_options
    if options.HasField("userns_options") and options.userns_options.mode != NODE:
        raise invalid("security context namespace_options userns_options: user namespaces are not supported")
    result: list[dict[str, Any]] = [{"type": "mount"}]
    if pod.netns is not None:
        result.append({"type": "network", "path": str(pod.netns)})
        result.append({"type": "uts", "path": f"/proc/{pod.infra_pid}/ns/uts"})
    if pod_options.ipc != NODE:
        result.append({"type": "ipc", "path": f"/proc/{pod.infra_pid}/ns/ipc"})
    if pod_options.pid == NODE:
        if options.pid not in (NODE, api_pb2.NamespaceMode.POD):
            raise invalid("security context namespace_options pid: the pod shares the host's PID namespace")
    elif options.pid == CONTAINER:
        result.append({"type": "pid"})
    elif options.pid == TARGET:
        if target_pid is None:
            raise invalid(f"security context namespace_options target_id {options.target_id!r}: "
                          f"no running container of the pod has that id")
        result.append({"type": "pid", "path": f"/proc/{target_pid}/ns/pid"})
    else:
        result.append({"type": "pid", "path": f"/proc/{pod.infra_pid}/ns/pid"})
    if unified_cgroup and not context.privileged:
        result.append({"type": "cgroup"})
    return result
