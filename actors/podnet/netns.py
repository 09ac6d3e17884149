"""A pod's network namespace, kept alive by a bind mount at `<netns dir>/<pod id>` rather than
by a process, so that it outlives any process in it and a daemon restart finds it again.

actord keeps its own dir (`<state-dir>/netns`) rather than `/var/run/netns`: `ip netns` and
other tools own that one and would list, or delete, a pod's namespace.

The namespace is made by a short-lived child, util-linux's `unshare --net=PATH true` (it
unshares and bind-mounts its namespace at PATH): unshare(CLONE_NEWNET) changes the namespace
of the thread that calls it, and the daemon's threads must stay in the host's. The child is
exec'd, never a fork of the daemon itself: gRPC's fork handlers abort a forked child of a
process whose other threads are in gRPC calls (the CRI server's).
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
from pathlib import Path

from hostos.libc import LIBC
from hostos.mounts import detach_mount

__all__ = ["NetnsError", "create_netns", "is_netns", "list_netns", "netns_path", "remove_netns"]

UNSHARE = "/usr/bin/unshare"
UNSHARE_TIMEOUT = 30.0
NSFS_MAGIC = 0x6E736673
"""statfs's f_type of a namespace file (/proc/PID/ns/net, and a bind mount of one)."""

POD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z", re.ASCII)
"""A pod id is a file name in the netns dir: no slash, no dot first, bounded."""


class NetnsError(Exception):
    """A network namespace that cannot be made or removed (the message names its path)."""


def netns_path(directory: Path, pod_id: str) -> Path:
    """Where the pod's namespace is mounted; a ValueError for an id that cannot be a file name."""
    if not POD_ID.match(pod_id):
        raise ValueError(f"pod id {pod_id!r} is not a valid netns name (letters, digits, '_', '.', '-'; "
                         "at most 128, not starting with '.', '_' or '-')")
    return directory / pod_id


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_rest", ctypes.c_long * 15)]


def is_netns(path: Path) -> bool:
    """Is a namespace mounted at `path` (not merely the empty file it is mounted on)?"""
    buffer = _Statfs()
    if LIBC.statfs(os.fsencode(path), ctypes.byref(buffer)) != 0:
        return False
    return int(buffer.f_type) == NSFS_MAGIC


def create_netns(directory: Path, pod_id: str) -> Path:
    """Make the pod's network namespace and mount it at `<directory>/<pod id>`; its path.

    Idempotent: a namespace already mounted there is kept (a retried RunPodSandbox). Only `lo`
    exists in a new namespace, down: the CNI loopback plugin brings it up.
    """
    path = netns_path(directory, pod_id)
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    if is_netns(path):
        return path
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
    except OSError as exc:
        raise NetnsError(f"cannot create netns file {path}: {exc.strerror}") from exc
    try:
        done = subprocess.run([UNSHARE, f"--net={path}", "true"], capture_output=True, timeout=UNSHARE_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        detach_mount(path)
        os.unlink(path)
        raise NetnsError(f"cannot create netns {path}: {UNSHARE}: {exc}") from exc
    if done.returncode != 0 or not is_netns(path):
        detach_mount(path)
        os.unlink(path)
        reason = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise NetnsError(f"cannot create netns {path}: {reason}")
    return path


def remove_netns(directory: Path, pod_id: str) -> None:
    """Unmount and delete the pod's namespace file; nothing there is fine. Processes still in
    the namespace keep it (the mount is detached lazily); it goes with the last of them."""
    path = netns_path(directory, pod_id)
    detach_mount(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise NetnsError(f"cannot remove netns {path}: {exc.strerror}") from exc


def list_netns(directory: Path) -> list[str]:
    """The pod ids with a namespace file in `directory`, sorted (after a daemon restart: what
    the previous run made; a file with no namespace mounted is listed too, so it is removed)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(name for name in names if POD_ID.match(name))
