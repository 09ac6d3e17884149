"""Waiting for fds to become readable, with poll(): select() fails for any fd >= 1024.

A daemon carrying thousands of containers holds thousands of fds, so every wait
in the daemon and in the shims goes through poll, which has no such ceiling.
"""

from __future__ import annotations

import math
import select

__all__ = ["readable", "reader_gone"]


def readable(fds: list[int], timeout: float | None) -> list[int]:
    """Those of `fds` readable (or hung up) within `timeout` seconds (None: wait for ever)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait_ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in poller.poll(wait_ms)]


def reader_gone(write_fd: int) -> bool:
    """Has the read end of the pipe `write_fd` writes to been closed (poll reports POLLERR)?"""
    poller = select.poll()
    poller.register(write_fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))
