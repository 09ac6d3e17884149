"""The runtime spec of a CRI container: every rule of the package applied to the base in
containerd's order (paths, devices, capabilities, privileged, no_new_privs, read-only root,
resources, cgroup, annotations, namespaces, user, seccomp: it depends on the final bounding
capabilities), but the mounts last: they make a missing host path, and every other refusal
comes before anything is made on the host."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.annotations import container_annotations
from actors.crispec.base import DEFAULT_PATH, base_spec
from actors.crispec.devices import apply_devices, apply_host_devices
from actors.crispec.errors import invalid
from actors.crispec.host import HostFacts
from actors.crispec.mounts import apply_mounts
from actors.crispec.namespaces import namespaces
from actors.crispec.pod import PodFacts
from actors.crispec.process import process_args, process_env, working_dir
from actors.crispec.resources import apply_resources, cgroups_path
from actors.crispec.seccomp import DEFAULT_PROFILE, seccomp_spec
from actors.crispec.security import apply_capabilities, apply_paths, apply_privileged, check_mac_options
from actors.crispec.user import process_user

__all__ = ["container_spec"]


def container_spec(container_id: str, config: api_pb2.ContainerConfig, pod_config: api_pb2.PodSandboxConfig,
                   image_config: dict[str, Any], rootfs: Path, pod: PodFacts, *, image_name: str = "",
                   host: HostFacts | None = None, target_pid: int | None = None,
                   default_profile: Path = DEFAULT_PROFILE) -> dict[str, Any]:
    """The config.json of container `container_id` (root at `<bundle>/rootfs`), for the pod
    `pod` and the image whose config (the OCI image config's `config` object) is `image_config`,
    its root at `rootfs`; `target_pid` is the init of the container a TARGET PID namespace
    names. Raises `CrispecError` naming the field at fault."""
    host = host or HostFacts.probe()
    if not isinstance(image_config, dict):
        raise invalid("the image config is not a JSON object")
    context = config.linux.security_context
    pod_namespaces = pod_config.linux.security_context.namespace_options
    host_ipc = pod_namespaces.ipc == api_pb2.NamespaceMode.NODE
    check_mac_options(context, pod_config, host)
    spec = base_spec()
    process = spec["process"]
    process["args"] = process_args(config, image_config)
    process["env"] = process_env(config, image_config, pod_config.hostname or socket.gethostname(), DEFAULT_PATH)
    process["cwd"] = working_dir(config, image_config)
    process["terminal"] = config.tty
    apply_paths(spec, context)
    apply_devices(spec, config)
    apply_capabilities(spec, context, host)
    apply_privileged(spec, context, pod_config, host)
    if context.privileged:
        apply_host_devices(spec, host.devices)
    process["noNewPrivileges"] = context.no_new_privs
    spec["root"]["readonly"] = context.readonly_rootfs
    apply_resources(spec, config, host)
    path = cgroups_path(pod.cgroup_parent, container_id)
    if path is not None:
        spec["linux"]["cgroupsPath"] = path
    spec["annotations"] = container_annotations(config, pod_config, pod.sandbox_id, image_name)
    spec["linux"]["namespaces"] = namespaces(context, pod_config, pod, target_pid=target_pid,
                                             unified_cgroup=host.cgroup_unified)
    image_user = image_config.get("User") or ""
    if not isinstance(image_user, str):
        raise invalid("the image config's User is not a string")
    process["user"] = process_user(context, image_user, rootfs)
    seccomp = seccomp_spec(context, process["capabilities"]["bounding"], default_profile=default_profile)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    apply_mounts(spec, config, pod, host_ipc=host_ipc, mountinfo=host.mountinfo)
    return spec
