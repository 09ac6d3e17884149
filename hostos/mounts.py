"""Detaching a mount, which the daemon and an init's shim both do to a container's rootfs bind
mount (whoever sees the container gone first; the daemon may be down)."""

from __future__ import annotations

import ctypes
import errno
import logging
import os

from hostos.libc import LIBC

__all__ = ["MNT_DETACH", "detach_mount"]

logger = logging.getLogger(__name__)

MNT_DETACH = 0x2


def detach_mount(target: str | os.PathLike[str]) -> None:
    """Detach the mount at `target` (lazily: a process still inside keeps its view); no mount is fine."""
    if LIBC.umount2(os.fsencode(target), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        logger.error("cannot unmount %s: %s", target, os.strerror(ctypes.get_errno()))
