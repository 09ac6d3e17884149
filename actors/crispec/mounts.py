"""The container's mounts: the CRI's `mounts` (bind mounts of host paths), the pod's
/etc/hostname, /etc/hosts, /etc/resolv.conf and /dev/shm, over the base's /proc, /dev, /sys...

As containerd's `containerMounts` and `WithMounts`: a pod file is mounted unless a CRI mount
has its path (read-only with a read-only root); the CRI's and the pod's mounts are sorted by
depth (a deeper one after the one it sits on); a base mount they cover is dropped (every one
under /dev with a /dev of theirs). A host path that does not exist is made as a directory
(0755), then its symlinks are resolved. Propagation: private is rprivate, host-to-container
rslave (the host path must be on a shared or slave mount; the root then propagates as rslave
too), bidirectional rshared (on a shared mount; the root rshared). `selinux_relabel` is
ignored: this host has no SELinux (and actord labels nothing where one has).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid
from actors.crispec.pod import PodFacts

__all__ = ["BindMount", "apply_mounts", "mount_point_of", "pod_mounts"]

PRIVATE = api_pb2.MountPropagation.PROPAGATION_PRIVATE
HOST_TO_CONTAINER = api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER
BIDIRECTIONAL = api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL


@dataclass(frozen=True)
class BindMount:
    """A mount of a host path, from the CRI or from the pod."""

    container_path: str
    host_path: str
    readonly: bool
    propagation: int = PRIVATE
    field: str = "mounts"


def pod_mounts(config: api_pb2.ContainerConfig, pod: PodFacts, *, host_ipc: bool) -> list[BindMount]:
    """The pod's files and /dev/shm, where the CRI's mounts leave them."""
    taken = {posixpath.normpath(mount.container_path) for mount in config.mounts}
    readonly = config.linux.security_context.readonly_rootfs
    result = []
    for path, source in (("/etc/hostname", pod.hostname_file), ("/etc/hosts", pod.hosts_file),
                         ("/etc/resolv.conf", pod.resolv_conf)):
        if source is not None and path not in taken and (path != "/etc/hostname" or source.exists()):
            result.append(BindMount(path, str(source), readonly, field="pod"))
    shm = Path("/dev/shm") if host_ipc else pod.shm
    if shm is not None and "/dev/shm" not in taken:
        result.append(BindMount("/dev/shm", str(shm), False, field="pod"))
    return result


def cri_mounts(config: api_pb2.ContainerConfig) -> list[BindMount]:
    """The CRI's mounts, checked."""
    result = []
    for index, mount in enumerate(config.mounts):
        field = f"mounts[{index}]"
        if not mount.container_path.startswith("/"):
            raise invalid(f"{field} container_path {mount.container_path!r} is not an absolute path")
        if not mount.host_path:
            raise invalid(f"{field} host_path is empty")
        if mount.image.image:
            raise invalid(f"{field} image: image volumes are not supported")
        if mount.recursive_read_only:
            raise invalid(f"{field} recursive_read_only: not supported by this runc")
        if list(mount.uidMappings) or list(mount.gidMappings):
            raise invalid(f"{field} uidMappings/gidMappings: id-mapped mounts are not supported")
        if mount.propagation not in (PRIVATE, HOST_TO_CONTAINER, BIDIRECTIONAL):
            raise invalid(f"{field} propagation {mount.propagation} is not a propagation mode")
        result.append(BindMount(posixpath.normpath(mount.container_path), mount.host_path, mount.readonly,
                                mount.propagation, field))
    return result


def apply_mounts(spec: dict[str, Any], config: api_pb2.ContainerConfig, pod: PodFacts, *, host_ipc: bool,
                 mountinfo: Path) -> None:
    """Set the spec's mounts (and the root's propagation)."""
    mounts = sorted(cri_mounts(config) + pod_mounts(config, pod, host_ipc=host_ipc),
                    key=lambda mount: posixpath.normpath(mount.container_path).count("/"))
    covered = {posixpath.normpath(mount.container_path) for mount in mounts}
    spec["mounts"] = [m for m in spec["mounts"] if posixpath.normpath(m["destination"]) not in covered
                      and not ("/dev" in covered and m["destination"].startswith("/dev/"))]
    linux = spec["linux"]
    for mount in mounts:
        source = _host_source(mount)
        options = ["rbind"]
        if mount.propagation == BIDIRECTIONAL:
            _check_propagation(source, mount, ("shared:",), mountinfo)
            options.append("rshared")
            linux["rootfsPropagation"] = "rshared"
        elif mount.propagation == HOST_TO_CONTAINER:
            _check_propagation(source, mount, ("shared:", "master:"), mountinfo)
            options.append("rslave")
            if linux.get("rootfsPropagation") not in ("rshared", "rslave"):
                linux["rootfsPropagation"] = "rslave"
        else:
            options.append("rprivate")
        options.append("ro" if mount.readonly else "rw")
        spec["mounts"].append({"destination": mount.container_path, "type": "bind", "source": source,
                               "options": options})


def _host_source(mount: BindMount) -> str:
    """The host path made if missing (as containerd: a 0755 dir), its symlinks resolved."""
    path = mount.host_path
    if not path.startswith("/"):
        raise invalid(f"{mount.field} host_path {path!r} is not an absolute path")
    try:
        os.stat(path)
    except FileNotFoundError:
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise invalid(f"{mount.field} host_path {path}: cannot be made: {exc.strerror}") from None
    except OSError as exc:
        raise invalid(f"{mount.field} host_path {path}: {exc.strerror}") from None
    return os.path.realpath(path)


def mount_point_of(path: str, mountinfo: str) -> tuple[str, list[str]]:
    """The mount point `path` is on, and that mount's optional fields (shared:N, master:N...),
    from the text of /proc/self/mountinfo (the last mount of the longest matching point)."""
    best, fields = "/", []
    for line in mountinfo.splitlines():
        parts = line.split()
        if len(parts) < 7 or "-" not in parts:
            continue
        point = parts[4].replace("\\040", " ")
        if (path == point or path.startswith(point.rstrip("/") + "/") or point == "/") and len(point) >= len(best):
            best, fields = point, parts[6:parts.index("-")]
    return best, fields


def _check_propagation(source: str, mount: BindMount, wanted: tuple[str, ...], mountinfo: Path) -> None:
    point, fields = mount_point_of(source, mountinfo.read_text())
    if not any(field.startswith(prefix) for field in fields for prefix in wanted):
        kind = "a shared" if wanted == ("shared:",) else "a shared or slave"
        raise invalid(f"{mount.field} host_path {mount.host_path}: its propagation needs {kind} mount, "
                      f"but it is on {point}, which is not")
