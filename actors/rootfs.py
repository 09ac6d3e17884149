"""A container's root filesystem, bind-mounted into its state dir for as long as it lives.

runc keeps the rootfs path it was created with and needs it again for every
`runc exec` (the working directory of its setup process). A path into the
bundle would break as soon as the bundle is moved; a bind mount at
`<state>/containers/<id>/rootfs` follows the directory itself, so the bundle can
be moved or removed while the container runs. The init's shim detaches it once
runc has deleted the container (the daemon may be down; `hostos.mounts`), the daemon again
before it removes the container's dir, and nothing is removed while the mount
is still there: a recursive delete must never reach into the container's files.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

from actors.treeremoval import remove_tree
from actors.wire.shim import ROOTFS_MOUNT
from hostos.libc import LIBC
from hostos.mounts import detach_mount

__all__ = ["bind_rootfs", "remove_container_dir"]

logger = logging.getLogger(__name__)

MS_BIND, MS_REC = 0x1000, 0x4000


def bind_rootfs(source: Path, container_dir: Path) -> Path:
    """Bind-mount `source` at `<container_dir>/rootfs`; the mount point."""
    target = container_dir / ROOTFS_MOUNT
    target.mkdir(mode=0o700)
    if LIBC.mount(os.fsencode(source), os.fsencode(target), None, MS_BIND | MS_REC, None) != 0:
        err = ctypes.get_errno()
        target.rmdir()
        raise OSError(err, f"cannot bind-mount the rootfs {source}: {os.strerror(err)}")
    return target


def _release(container_dir: Path) -> bool:
    """Detach the rootfs mount and remove its (then empty) mount point; False if it is still there."""
    target = container_dir / ROOTFS_MOUNT
    detach_mount(target)  # lazily: a process still inside keeps its view
    try:
        target.rmdir()  # never deletes content: fails on a mount point that still shows files
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.error("leaving %s in place: its rootfs %s is still mounted (%s)", container_dir, target, exc.strerror)
        return False
    return True


def remove_container_dir(container_dir: Path) -> None:
    """Remove a container's state dir, never reaching through its rootfs mount (nor any other:
    `remove_tree` leaves mount points in place, and says so)."""
    if not _release(container_dir):
        return
    try:
        remove_tree(container_dir, missing_ok=True)
    except OSError as exc:
        logger.error("cannot remove %s: %s", container_dir, exc.strerror or exc)
