"""Process identity: a pid alone can be reused, a pid with its start time cannot."""

from __future__ import annotations

import os
import select
import signal

__all__ = ["kill_and_wait", "same_process", "start_time"]


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def same_process(pid: int, started: int | None) -> bool:
    """Is `pid` still the process that started at `started` (and not a zombie)?"""
    return started is not None and start_time(pid) == started


def kill_and_wait(pid: int, started: int | None, timeout: float) -> bool:
    """SIGKILL the process if it is still the one we know; True if it was alive and is now gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not same_process(pid, started):
            return False
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        select.select([fd], [], [], timeout)
        return True
    finally:
        os.close(fd)
