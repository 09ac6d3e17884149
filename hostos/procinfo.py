"""Process identity: a pid alone can be reused, a pid with its start time cannot."""

from __future__ import annotations

import os
import signal

from hostos.fdwait import readable

__all__ = ["children", "kill_and_wait", "open_pidfd", "parent_pid", "same_process", "start_time"]


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat from field 3 (the state) on; None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); None if there is no such process."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] == b"Z":
        return None
    return int(fields[19])


def parent_pid(pid: int) -> int | None:
    """The parent of `pid` (field 4 of /proc/<pid>/stat); None if there is no such process."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def children(pid: int) -> list[int]:
    """The children of `pid`, as the kernel lists them for each of its threads."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as handle:
                found.extend(int(child) for child in handle.read().split())
        except OSError:
            continue
    return found


def same_process(pid: int, started: int | None) -> bool:
    """Is `pid` still the process that started at `started` (and not a zombie)?"""
    return started is not None and start_time(pid) == started


def open_pidfd(pid: int, started: int | None) -> int:
    """A pidfd on `pid` if it is still the process that started at `started`, else -1."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return -1
    if not same_process(pid, started):  # checked after the open: the fd pins the process
        os.close(fd)
        return -1
    return fd


def kill_and_wait(pid: int, started: int | None, timeout: float) -> bool:
    """SIGKILL the process if it is still the one we know; True if it was alive and is now gone."""
    fd = open_pidfd(pid, started)
    if fd < 0:
        return False
    try:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        readable([fd], timeout)
        return True
    finally:
        os.close(fd)
