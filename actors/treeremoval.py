"""Removing a directory tree that an image or a container filled: however deep, on one filesystem,
never through a symlink.

A container's rootfs or an unpacked image holds whatever its author put there: a tree deeper
than Python's recursion limit (shutil.rmtree recursed, and holds an fd per level), symlinks
to host files, and possibly a mount point (a rootfs bind mount, a mount made by hand) whose
files belong to somewhere else. So the walk is a loop over a stack of names, not a recursion;
it holds two fds whatever the depth (the top and the directory being emptied) and climbs back
through `..`, checked against the identity it saw on the way down (a directory moved meanwhile
stops the removal instead of deleting elsewhere); every directory is opened with `O_NOFOLLOW`
relative to its parent's fd; and a directory on another mount (another mount id, or device)
is left in place, untouched, and named in the error raised once everything else is gone.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from dataclasses import dataclass, field

from hostos.libc import LIBC

__all__ = ["MountPointsKept", "remove_tree"]

OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW, STATX_MNT_ID = 0x1000, 0x100, 0x1000
STATX_SIZE, STATX_MNT_ID_OFFSET = 256, 0x90
"""struct statx's size and where its stx_mnt_id (u64) sits; stx_mask is the u32 at 0."""


class MountPointsKept(OSError):
    """The tree is gone except for the mount points below it (and the directories holding them)."""

    def __init__(self, top: str, mounts: list[str]) -> None:
        super().__init__(errno.EBUSY, f"left in place: {len(mounts)} mount point(s) below {top}, not descended "
                                      f"into: {', '.join(mounts)}")
        self.mounts = mounts


def _mount_id(fd: int) -> int | None:
    """The id of the mount `fd` is on (statx STATX_MNT_ID, Linux 5.8+); None if the kernel does not say."""
    buffer = ctypes.create_string_buffer(STATX_SIZE)
    if LIBC.statx(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, buffer) != 0:
        return None
    mask: int = struct.unpack_from("=I", buffer.raw, 0)[0]
    if not mask & STATX_MNT_ID:
        return None
    mount_id: int = struct.unpack_from("=Q", buffer.raw, STATX_MNT_ID_OFFSET)[0]
    return mount_id


@dataclass
class _Level:
    """A directory on the way down: its name in its parent, its identity, what is left to visit."""

    name: str
    identity: tuple[int, int]
    pending: list[str] = field(default_factory=list)
    """Subdirectories still to empty and remove."""
    kept: set[str] = field(default_factory=set)
    """Entries left in place: mount points, or directories holding one."""


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def remove_tree(path: str | os.PathLike[str], *, dir_fd: int | None = None, missing_ok: bool = False) -> None:
    """Remove `path` (relative to `dir_fd` if given) and everything below it.

    Symlinks are removed, never followed; anything that is not a directory is unlinked (`path`
    itself too). A mount point below `path` is not entered: it stays, with the directories
    leading to it, and MountPointsKept names it after the rest is removed. Any other failure
    raises its OSError at once."""
    try:
        info = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path, dir_fd=dir_fd)
        return
    top = os.open(path, OPEN_DIRECTORY, dir_fd=dir_fd)
    try:
        kept = _empty(top, str(path))
    finally:
        os.close(top)
    if kept:
        raise MountPointsKept(str(path), kept)
    os.rmdir(path, dir_fd=dir_fd)


def _list(directory: int, level: _Level) -> None:
    """Unlink what `directory` holds besides subdirectories; those become `level.pending`."""
    level.pending = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in level.kept:
                continue
            if entry.is_dir(follow_symlinks=False):
                level.pending.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=directory)


def _empty(top: int, shown: str) -> list[str]:
    """Remove everything below the directory open at `top`; the mount points left (relative to it)."""
    top_info = os.fstat(top)
    top_mount = _mount_id(top)
    kept: list[str] = []
    levels = [_Level("", _identity(top_info))]
    current = os.dup(top)
    try:
        _list(current, levels[0])
        while True:
            level = levels[-1]
            if level.pending:
                name = level.pending.pop()
                try:
                    child = os.open(name, OPEN_DIRECTORY, dir_fd=current)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    os.unlink(name, dir_fd=current)  # no longer a directory since the listing
                    continue
                child_info = os.fstat(child)
                if child_info.st_dev != top_info.st_dev or _mount_id(child) not in (top_mount, None):
                    os.close(child)
                    kept.append("/".join([*(above.name for above in levels[1:]), name]))
                    level.kept.add(name)
                    continue
                os.close(current)
                current = child
                levels.append(_Level(name, _identity(child_info)))
                _list(current, levels[-1])
            elif len(levels) == 1:
                return kept
            else:
                emptied = levels.pop()
                parent = os.open("..", OPEN_DIRECTORY, dir_fd=current)
                os.close(current)
                current = parent
                if _identity(os.fstat(current)) != levels[-1].identity:
                    raise OSError(errno.ESTALE, f"{shown}: a directory was moved while the tree was being "
                                                f"removed; stopped")
                if emptied.kept:
                    levels[-1].kept.add(emptied.name)  # it holds a mount point: it stays too
                else:
                    os.rmdir(emptied.name, dir_fd=current)
    finally:
        os.close(current)
