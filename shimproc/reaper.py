"""Reaping: a shim (and the spawner) is a child subreaper that reaps every child it gets (no
zombies, ever), woken by SIGCHLD through an fd so that its poll loop waits on nothing else."""

from __future__ import annotations

import ctypes
import os
import signal
import time

from hostos.fdwait import readable
from hostos.libc import LIBC

__all__ = ["Reaper", "become_subreaper", "exit_status", "set_signals"]

PR_SET_CHILD_SUBREAPER = 36

_signals_set = False
"""Whether this process image has its signal dispositions (a forked one inherits them)."""


def exit_status(wait_status: int) -> int:
    """The exit code, or 128+signal for a process killed by a signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Reaper:
    """Reaps every child of this process and remembers the statuses it collected.

    SIGCHLD wakes `wake_fd` (through `signal.set_wakeup_fd`, once `set_signals` has given it
    a handler), so a poll loop can wait on it.
    """

    def __init__(self) -> None:
        self.wake_fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.statuses: dict[int, int] = {}

    @property
    def fds(self) -> tuple[int, int]:
        return self.wake_fd, self._wake_w

    def clear_wakeups(self) -> None:
        """Empty the wake-up pipe; call it when a poll found it readable."""
        try:
            os.read(self.wake_fd, 4096)  # a byte per signal: one read takes them all, a poll finds any rest
        except BlockingIOError:
            pass

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = exit_status(status)

    def wait_for(self, pid: int, deadline: float | None = None) -> int | None:
        """Block until `pid` is reaped (reaping all others meanwhile); None on deadline."""
        while True:
            self.reap()
            if pid in self.statuses:
                return self.statuses.pop(pid)
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if deadline is not None and timeout == 0.0:
                return None
            if readable([self.wake_fd], timeout):
                self.clear_wakeups()


def set_signals() -> None:
    """SIGCHLD wakes a Reaper; TERM, INT, HUP and PIPE cannot stop us. Once per process
    image: the spawner sets them for itself, and the shims it forks inherit them."""
    global _signals_set
    if _signals_set:
        return
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _signals_set = True


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of PID 1."""
    if LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
