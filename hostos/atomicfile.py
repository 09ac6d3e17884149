"""Files written so that a reader never sees a torn one: appends stored whole or not at all,
replacements atomic, space for a later write set aside while there is some.

The daemon and the shim both write this way (the event log, the output log, `exit.json`), so
the helpers take plain strings as well as paths: a shim avoids pathlib (every library function
it runs after the fork costs pages it would share with the spawner).
"""

from __future__ import annotations

import errno
import os

__all__ = ["append_record", "describe_os_error", "remove_file", "reserve_file", "write_all", "write_file_atomic"]


def describe_os_error(exc: OSError) -> str:
    """An OSError as a phrase to put in a sentence: "no space left on device"."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a write may store only part of it (a filling disk does that
    just before ENOSPC). OSError when the rest cannot be written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def append_record(fd: int, size: int, record: bytes) -> int:
    """Append `record` to the file open with O_APPEND on `fd`, now `size` bytes; the new size.

    A record is stored whole or not at all: when it cannot be written the file is cut
    back to `size` (no torn record for a reader to trip on) and the OSError is raised.
    """
    try:
        write_all(fd, record)
    except OSError:
        os.ftruncate(fd, size)
        raise
    return size + len(record)


def remove_file(path: str | os.PathLike[str]) -> None:
    """Remove a file if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _temporary(path: str | os.PathLike[str]) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp")


def reserve_file(path: str | os.PathLike[str], size: int = 4096) -> None:
    """Allocate the space a later `write_file_atomic(path, ...)` of up to `size` bytes writes
    into, so that it succeeds even when the disk has filled up meanwhile."""
    fd = os.open(_temporary(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, b" " * size)
    finally:
        os.close(fd)


def write_file_atomic(path: str | os.PathLike[str], payload: bytes, *, durable: bool = True) -> None:
    """Replace a file so that readers see the old or the new content, never a torn one.

    The content is written over the temporary file's old bytes (space `reserve_file` may
    have set aside) and cut to length. When anything fails the temporary file is removed
    (it would hold space on a full disk) and the OSError is raised; the old file is untouched.
    """
    tmp = _temporary(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, payload)
            os.ftruncate(fd, len(payload))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
    if durable:
        dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
