"""Waiting for fds to become readable, with poll(): select() fails for any fd >= 1024.

A daemon carrying thousands of containers holds thousands of fds, so every wait
in the daemon and in the shims goes through poll, which has no such ceiling.
"""

from __future__ import annotations

import math
import select

__all__ = ["readable"]


def readable(fds: list[int], timeout: float | None) -> list[int]:
    """Those of `fds` readable (or hung up) within `timeout` seconds (None: wait for ever)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    wait_ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
    return [fd for fd, _ in poller.poll(wait_ms)]
