"""Inputs of the CRI spec tests: a rootfs with crafted /etc/passwd and /etc/group, a host with
fixed facts, and `make_spec`, the spec of a `ContainerConfig` built from keyword arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.capabilities import CAPABILITIES
from actors.crispec.host import HostFacts
from actors.crispec.pod import PodFacts
from actors.crispec.spec import container_spec

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
broken:x:notanumber:0::/nowhere:/bin/sh
alice:x:1000:1000:Alice:/home/alice:/bin/sh
\xff\xfe garbage without colons
bob:x:1001:1001::/home/bob:/bin/sh
"""
GROUP = """root:x:0:
alice:x:1000:
bob:x:1001:
wheel:x:10:alice,root
audio:x:29:alice
video:x:44:bob
garbage:x:
"""
HOST_CAPABILITIES = frozenset(name for name in CAPABILITIES if name != "CAP_SYS_RESOURCE")
"""This machine's: CAP_SYS_RESOURCE is not in its bounding set."""


def make_rootfs(directory: Path, passwd: str | None = PASSWD, group: str | None = GROUP) -> Path:
    """A rootfs with only /etc/passwd and /etc/group (either left out when None)."""
    rootfs = directory / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    if passwd is not None:
        (rootfs / "etc" / "passwd").write_bytes(passwd.encode("utf-8", "surrogateescape"))
    if group is not None:
        (rootfs / "etc" / "group").write_text(group)
    return rootfs


def make_host(directory: Path, *, mountinfo: str = "", **facts: Any) -> HostFacts:
    """A cgroup v1 host without AppArmor, SELinux or hugetlb, with swap accounting, the
    capabilities of HOST_CAPABILITIES and the given mountinfo text."""
    path = directory / "mountinfo"
    path.write_text(mountinfo)
    values: dict[str, Any] = {"apparmor": False, "selinux": False, "cgroup_unified": False, "hugetlb": False,
                              "swap_controller": True, "capabilities": HOST_CAPABILITIES, "mountinfo": path}
    values.update(facts)
    return HostFacts(**values)


def security(**fields: Any) -> api_pb2.ContainerConfig:
    """A config running `sh` with the security context `fields`."""
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="c1"), command=["sh"],
        linux=api_pb2.LinuxContainerConfig(security_context=api_pb2.LinuxContainerSecurityContext(**fields)))


def pod_config(*, privileged: bool = False, network: api_pb2.NamespaceMode.ValueType = api_pb2.NamespaceMode.POD,
               pid: api_pb2.NamespaceMode.ValueType = api_pb2.NamespaceMode.POD,
               ipc: api_pb2.NamespaceMode.ValueType = api_pb2.NamespaceMode.POD,
               **fields: Any) -> api_pb2.PodSandboxConfig:
    options = api_pb2.NamespaceOption(network=network, pid=pid, ipc=ipc)
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="pod", namespace="default", uid="pod-uid"), hostname="podhost",
        linux=api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
            privileged=privileged, namespace_options=options)), **fields)


POD = PodFacts("sandbox1", 4242, Path("/run/netns/pod1"))


def make_spec(directory: Path, config: api_pb2.ContainerConfig, *, image: dict[str, Any] | None = None,
              pod: PodFacts = POD, sandbox: api_pb2.PodSandboxConfig | None = None, host: HostFacts | None = None,
              rootfs: Path | None = None, **options: Any) -> dict[str, Any]:
    """The spec of `config` in a pod of POD's facts, on make_host's host, with make_rootfs's rootfs."""
    if rootfs is None:
        rootfs = directory / "rootfs" if (directory / "rootfs").exists() else make_rootfs(directory)
    return container_spec("c1", config, sandbox or pod_config(), image or {}, rootfs, pod,
                          host=host or make_host(directory), **options)
