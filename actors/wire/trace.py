"""Exit-path stamps for bench/exit_path.py: when each hop of an exit report happened.

With ACTORD_TRACE_EXIT=<file> in actord's environment (the spawner and its shims inherit
it), the shim, the bus, the Monitor and the EventLog append one `<token> <hop> <ns>` line per
hop to that file (CLOCK_MONOTONIC, the clock of every process on the host; O_APPEND keeps
each line whole): the shim and the daemon write one format, so it is the wire's. Without it
`ENABLED` is False and callers skip `stamp`: the normal path pays one test of a constant.
"""

from __future__ import annotations

import os
import time

__all__ = ["ENABLED", "TRACE_VARIABLE", "stamp"]

TRACE_VARIABLE = "ACTORD_TRACE_EXIT"
ENABLED = TRACE_VARIABLE in os.environ
_fd = -1


def stamp(token: str, hop: str) -> None:
    """Record that the exit report of process `token` reached `hop` now."""
    global _fd
    now = time.monotonic_ns()
    if _fd < 0:
        _fd = os.open(os.environ[TRACE_VARIABLE], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(_fd, f"{token} {hop} {now}\n".encode())
