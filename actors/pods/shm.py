"""A pod's /dev/shm: one tmpfs per pod, `<state-dir>/pods/<pod id>/shm`, bind-mounted at
/dev/shm into its infra and every container of it, so that POSIX shared memory (shm_open, files
in /dev/shm) is shared in the pod as its IPC namespace is (containerd's sandbox shm: the same
size, flags and mode). A pod with the host's IPC uses the host's /dev/shm and has none.

It lives in the state dir, on the tmpfs a reboot wipes: a pod's shm must not outlive the
boot its processes ran in. It is mounted by RunPodSandbox and unmounted by StopPodSandbox once
the pod's containers are killed (detached: a process still in it keeps its view).
"""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

from hostos.libc import LIBC
from hostos.mounts import MNT_DETACH

__all__ = ["HOST_SHM", "ShmError", "list_shm", "mount_shm", "remove_shm", "shm_path"]

HOST_SHM = Path("/dev/shm")
SHM_OPTIONS = b"mode=1777,size=65536k"
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8


class ShmError(Exception):
    """A pod's shm that cannot be mounted or removed (the message names its path)."""


def shm_path(directory: Path, pod_id: str) -> Path:
    """Where the pod's shm is mounted (`directory` is `<state-dir>/pods`)."""
    return directory / pod_id / "shm"


def mount_shm(directory: Path, pod_id: str) -> Path:
    """Mount the pod's tmpfs; its path. Idempotent: one mounted there already is kept."""
    path = shm_path(directory, pod_id)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ShmError(f"cannot create the pod's shm dir {path}: {exc.strerror}") from exc
    if os.path.ismount(path):
        return path
    if LIBC.mount(b"shm", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, SHM_OPTIONS) != 0:
        raise ShmError(f"cannot mount the pod's shm at {path}: {os.strerror(ctypes.get_errno())}")
    return path


def remove_shm(directory: Path, pod_id: str) -> None:
    """Unmount the pod's shm and remove its dirs; none there is fine (idempotent)."""
    path = shm_path(directory, pod_id)
    while os.path.ismount(path):
        if LIBC.umount2(os.fsencode(path), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL,
                                                                                           errno.ENOENT):
            raise ShmError(f"cannot unmount the pod's shm {path}: {os.strerror(ctypes.get_errno())}")
    for empty in (path, path.parent):
        try:
            empty.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ShmError(f"cannot remove the pod's shm dir {empty}: {exc.strerror}") from exc


def list_shm(directory: Path) -> list[str]:
    """The ids of the pods with a shm dir under `directory`."""
    if not directory.is_dir():
        return []
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())
