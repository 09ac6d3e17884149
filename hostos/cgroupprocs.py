"""Moving a process into cgroups by writing its pid to their `cgroup.procs` files (a new shim's
helper moves the shim so before the runtime runs)."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

__all__ = ["move_into"]

_MOVE_ATTEMPTS = 3


def move_into(procs_files: Sequence[str], pid: int) -> None:
    """Move process `pid` into each cgroup (`<dir>/cgroup.procs`); a cgroup removed meanwhile
    (another daemon found it empty as it stopped) is made again. OSError if it cannot be done."""
    for procs in procs_files:
        for attempt in range(_MOVE_ATTEMPTS):
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if attempt == _MOVE_ATTEMPTS - 1:
                    raise
                os.makedirs(os.path.dirname(procs), exist_ok=True)
                continue
            try:
                os.write(fd, b"%d" % pid)
            except OSError as exc:
                removed = exc.errno in (errno.ENODEV, errno.ENOENT)  # the cgroup went after the open
                if not removed or attempt == _MOVE_ATTEMPTS - 1:
                    raise OSError(exc.errno, exc.strerror, procs) from None
                continue
            finally:
                os.close(fd)
            break
