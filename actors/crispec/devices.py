"""The container's devices: the CRI's (a host device node, or a directory of them, at a path
in the container with cgroup permissions) and a privileged container's every host device.

As containerd's `WithDevices`: the host path's symlinks are resolved, the node is stat'ed for
its type, major, minor, mode and owner, and a device cgroup rule allows exactly it with the
given permissions. A privileged container gets the host's devices (as `oci.WithHostDevices`,
/dev without pts, shm, mqueue, fd and console) and every device allowed.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid, not_found

__all__ = ["apply_devices", "apply_host_devices", "device_entry"]

PERMISSIONS = re.compile(r"[rwm]{1,3}")
SKIPPED_HOST_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def device_entry(host_path: str, container_path: str) -> tuple[dict[str, Any], str, int, int] | None:
    """The spec's `linux.devices` entry of a host node, its type, major and minor; None for
    what is no device."""
    info = os.stat(host_path)
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        return None
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    entry = {"path": container_path, "type": kind, "major": major, "minor": minor,
             "fileMode": stat.S_IMODE(info.st_mode), "uid": info.st_uid, "gid": info.st_gid}
    return entry, kind, major, minor


def apply_devices(spec: dict[str, Any], config: api_pb2.ContainerConfig) -> None:
    """Add the CRI's devices and their cgroup rules."""
    linux = spec["linux"]
    for index, device in enumerate(config.devices):
        field = f"devices[{index}]"
        permissions = device.permissions or "rwm"
        if not PERMISSIONS.fullmatch(permissions):
            raise invalid(f"{field} permissions {device.permissions!r}: not a combination of r, w and m")
        if not device.host_path.startswith("/"):
            raise invalid(f"{field} host_path {device.host_path!r} is not an absolute path")
        container_path = device.container_path or device.host_path
        if not container_path.startswith("/"):
            raise invalid(f"{field} container_path {container_path!r} is not an absolute path")
        host_path = os.path.realpath(device.host_path)
        if not os.path.exists(host_path):
            raise not_found(f"{field} host_path {device.host_path} does not exist")
        try:
            found = _add_nodes(linux, host_path, container_path, permissions)
        except OSError as exc:
            raise invalid(f"{field} host_path {device.host_path}: {exc.strerror}") from None
        if not found:
            raise invalid(f"{field} host_path {device.host_path} is not a device (nor a directory of devices)")


def _add_nodes(linux: dict[str, Any], host_path: str, container_path: str, permissions: str) -> bool:
    """Add the device at `host_path`, or every device below it; were there any?"""
    if os.path.isdir(host_path):
        nodes = [(str(path), container_path + "/" + str(path.relative_to(host_path)))
                 for path in sorted(Path(host_path).rglob("*")) if not path.is_dir()]
    else:
        nodes = [(host_path, container_path)]
    found = False
    for node, target in nodes:
        made = device_entry(node, target)
        if made is None:
            continue
        entry, kind, major, minor = made
        linux.setdefault("devices", []).append(entry)
        linux["resources"]["devices"].append({"allow": True, "type": kind, "major": major, "minor": minor,
                                              "access": permissions})
        found = True
    return found


def apply_host_devices(spec: dict[str, Any], devices_dir: Path) -> None:
    """A privileged container's devices: every device node of the host's /dev, all allowed."""
    entries = []
    for directory, subdirs, files in os.walk(devices_dir):
        subdirs[:] = sorted(name for name in subdirs if name not in SKIPPED_HOST_DIRS)
        for name in sorted(files):
            path = os.path.join(directory, name)
            if path == os.path.join(devices_dir, "console") or os.path.islink(path):
                continue
            try:
                made = device_entry(path, path)
            except OSError:
                continue
            if made is not None:
                made[0]["path"] = "/dev/" + os.path.relpath(path, devices_dir)
                entries.append(made[0])
    spec["linux"]["devices"] = entries
    spec["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
