"""Read a small file of a container's rootfs as the container would see it, and nothing else.

The rootfs is hostile: its /etc/passwd may be a symlink to the host's /etc/shadow, /etc may
be a symlink to the host's /etc, a file may be a FIFO (a read would block) or 100 MB. So the
path is walked one component at a time from a directory fd of the rootfs, each opened with
O_NOFOLLOW; a symlink met on the way is read and resolved against the rootfs itself (an
absolute target starts again at the rootfs, `..` stops at it), as openat2's RESOLVE_IN_ROOT
would. Only a regular file of at most MAX_FILE bytes is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from actors.crispec.errors import invalid

__all__ = ["MAX_FILE", "MAX_SYMLINKS", "read_rootfs_file"]

MAX_FILE = 4 << 20
"""Bytes an image's /etc/passwd or /etc/group may hold (a big real one is some KiB)."""
MAX_SYMLINKS = 40
"""Symlinks followed in one path, as the kernel's limit."""
OPEN_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def read_rootfs_file(rootfs: Path, path: str) -> bytes | None:
    """The bytes of `path` (absolute, in the container's view) inside `rootfs`; None when it
    does not exist there (a dangling symlink included)."""
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise invalid(f"the container's rootfs {rootfs} cannot be opened: {exc.strerror}") from None
    try:
        fd = _resolve(root_fd, path)
        if fd is None:
            return None
        try:
            return _read_regular(fd, path)
        finally:
            os.close(fd)
    except OSError as exc:
        raise invalid(f"the image's {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(root_fd)


def _resolve(root_fd: int, path: str) -> int | None:
    """An O_PATH fd of what `path` names below `root_fd` (its symlinks resolved inside)."""
    pending = [part for part in path.split("/") if part not in ("", ".")]
    stack = [os.dup(root_fd)]
    followed = 0
    try:
        while pending:
            name = pending.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(name, OPEN_PATH, dir_fd=stack[-1])
            except FileNotFoundError:
                return None
            except NotADirectoryError:
                return None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise invalid(f"the image's {path}: more than {MAX_SYMLINKS} symlinks on its way")
                target = os.readlink(name, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = [part for part in target.split("/") if part not in ("", ".")]
                continue
            if pending and not stat.S_ISDIR(mode):
                os.close(fd)
                return None
            stack.append(fd)
        return stack.pop() if len(stack) > 1 else None
    finally:
        for fd in stack:
            os.close(fd)


def _read_regular(path_fd: int, path: str) -> bytes:
    """Read a regular file of at most MAX_FILE bytes through a fresh fd of `path_fd`'s file."""
    if not stat.S_ISREG(os.fstat(path_fd).st_mode):
        raise invalid(f"the image's {path} is not a regular file")
    fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size > MAX_FILE:
            raise invalid(f"the image's {path} is larger than {MAX_FILE} bytes")
        chunks, size = [], 0
        while chunk := os.read(fd, MAX_FILE + 1 - size):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE:
                raise invalid(f"the image's {path} is larger than {MAX_FILE} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
