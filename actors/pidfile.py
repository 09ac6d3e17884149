"""`actord start --pidfile`: the daemon's pid in a file, written and removed without following links.

The pidfile often lives in a directory others can write to (/tmp, a shared /run
subdirectory). A symlink planted there would have root write, then delete, any
file it points at: the file is opened with O_NOFOLLOW (and must be a regular
file), and at stop it is removed only while it still holds our pid, so a file
another daemon or an operator has rewritten since is left alone.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["PidFile", "PidFileError"]

MAX_PIDFILE = 64
"""Bytes read back at stop: a pid and a newline, with room to spare."""


class PidFileError(Exception):
    """The pidfile cannot be written: the message names it and says why."""


class PidFile:
    """The pidfile at `path` (absolute), holding the pid of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self) -> None:
        """Create or overwrite the pidfile; PidFileError for a symlink, a non-regular file, or an OSError."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PidFileError(f"the pidfile {self.path} is a symbolic link: refusing to write through it "
                                   f"(remove it, or give the path of the file itself)") from None
            raise PidFileError(f"cannot write the pidfile {self.path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PidFileError(f"the pidfile {self.path} is not a regular file: refusing to write to it")
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            raise PidFileError(f"cannot write the pidfile {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def remove(self) -> bool:
        """Remove the pidfile if it is still ours (a regular file, not a link, holding our pid);
        False when it was left (gone, replaced, or rewritten with another pid)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or os.read(fd, MAX_PIDFILE).strip() != str(os.getpid()).encode():
                return False
        except OSError:
            return False
        finally:
            os.close(fd)
        try:
            os.unlink(self.path)
        except OSError:
            return False
        return True
