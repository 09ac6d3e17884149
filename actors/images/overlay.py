"""Overlay mounts: a container's root filesystem as its image's layers, read-only, under its own
upper dir; made with mount(2) (through ctypes, as the rootfs bind mount is), read back from
/proc/self/mountinfo.

mount(2) takes the options as one string of at most a page: with absolute paths of ~100 bytes
a layer, an image of some forty layers reaches it, and the error says so instead of the
kernel's bare EINVAL. overlayfs separates lower dirs with ':' and options with ',': a path
holding either (or the '\\' that escapes them) is refused rather than escaped.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path

from actors.images.errors import ImageError
from hostos.libc import LIBC

__all__ = ["MOUNT_DATA_LIMIT", "is_mounted", "mount_overlay", "overlay_lower_dirs", "overlay_options", "unmount"]

MOUNT_DATA_LIMIT = os.sysconf("SC_PAGE_SIZE") - 1
"""The longest option string mount(2) passes on (a page, with its terminating NUL)."""
UNSAFE_IN_OPTIONS = re.compile(rb"[,:\\\n]")
MOUNTINFO = "/proc/self/mountinfo"
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def overlay_options(lower_top_first: Sequence[Path], upper: Path, work: Path) -> bytes:
    """The overlay's mount options: lowerdir (the top layer first), upperdir, workdir."""
    if not lower_top_first:
        raise ImageError("an overlay needs at least one lower layer")
    paths = [os.fsencode(path) for path in [*lower_top_first, upper, work]]
    for path in paths:
        if not path.startswith(b"/") or UNSAFE_IN_OPTIONS.search(path):
            raise ImageError(f"{os.fsdecode(path)}: an overlay path must be absolute and hold no ',', ':', '\\\\' "
                             f"or newline")
    data = b"lowerdir=%s,upperdir=%s,workdir=%s" % (b":".join(paths[:-2]), paths[-2], paths[-1])
    if len(data) > MOUNT_DATA_LIMIT:
        raise ImageError(f"the overlay of {len(lower_top_first)} layers needs {len(data)} bytes of mount options, "
                         f"over the kernel's limit of {MOUNT_DATA_LIMIT} (one page): too many layers for "
                         f"paths this long (a shorter --root helps)")
    return data


def mount_overlay(target: Path, lower_top_first: Sequence[Path], upper: Path, work: Path) -> None:
    """Mount an overlay of `lower_top_first` (read-only) under `upper` at `target`."""
    data = overlay_options(lower_top_first, upper, work)
    if LIBC.mount(b"overlay", os.fsencode(target), b"overlay", 0, data) != 0:
        err = ctypes.get_errno()
        raise ImageError(f"cannot mount the overlay at {target}: {os.strerror(err)}")


def unmount(target: Path) -> None:
    """Unmount `target` (not lazily: a mount still in use stays, and the error says so)."""
    if LIBC.umount2(os.fsencode(target), 0) != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY:
            raise ImageError(f"cannot unmount {target}: it is still in use (a process has a file open or its "
                             f"working directory there, or a mount below it)")
        raise ImageError(f"cannot unmount {target}: {os.strerror(err)}")


def _unescape(field: str) -> str:
    """A mountinfo field: the kernel writes space, tab, newline and backslash as octal escapes."""
    return OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, super options) of every mount of this namespace."""
    found = []
    with open(MOUNTINFO) as table:
        for line in table:
            fields = line.split()
            separator = fields.index("-")
            found.append((_unescape(fields[4]), fields[separator + 1], fields[separator + 3]))
    return found


def is_mounted(path: Path) -> bool:
    """Is something mounted at `path` (an absolute path, symlinks resolved)?"""
    return any(point == str(path) for point, _, _ in _mounts())


def overlay_lower_dirs() -> set[Path]:
    """The lower dirs of every overlay mounted in this namespace."""
    lower: set[Path] = set()
    for _, fstype, options in _mounts():
        if fstype != "overlay":
            continue
        for option in options.split(","):
            if option.startswith("lowerdir="):
                lower.update(Path(_unescape(d)) for d in option.removeprefix("lowerdir=").split(":") if d)
    return lower
