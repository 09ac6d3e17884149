"""Reaping the orphans of an exec: a helper inside the container's PID namespace.

The kernel gives an orphan to the nearest child subreaper *in its own PID
namespace*, else to that namespace's init. A shim lives outside the
container's namespace, so orphans of an exec'd process would go to the
container's init, which may never reap them (`sleep`, `top`): <defunct>
processes. So the shim forks a helper into the container's PID namespace (only
the PID namespace: it still sees the host's files and runs the host's runc),
the helper becomes a child subreaper and runs `runc exec`: the exec'd process
and every orphan it leaves are then the helper's to reap. The helper reports
the exec'd process's start and exit to the shim over a pipe, and lives on
until the last of its adopted children is gone (or the container is).
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
from pathlib import Path
from typing import Any

from setproctitle import setproctitle

from actors.procinfo import same_process

__all__ = ["ExecHelper"]

CLONE_NEWPID = 0x20000000
PR_SET_CHILD_SUBREAPER = 36
KILLED_WITH_CONTAINER = 137


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWPID) != 0:
        raise OSError(ctypes.get_errno(), "setns(CLONE_NEWPID) failed")


class ExecHelper:
    """The shim's handle on its helper: its host pid and the report pipe."""

    def __init__(self, pid: int, report_fd: int) -> None:
        self.pid = pid
        self.fd = report_fd
        self._buffer = b""
        self.status: int | None = None
        self.closed = False

    @classmethod
    def start(cls, init_pid: int, init_start: int | None, argv: list[str], file_actions: list[Any],
              pid_file: Path, title: str) -> ExecHelper:
        """Fork the helper into the PID namespace of the container whose init is `init_pid`."""
        try:
            target_ns = os.open(f"/proc/{init_pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            raise OSError("the container has exited") from None
        own_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        try:
            if not same_process(init_pid, init_start):  # checked after the open: the fd pins the namespace
                raise OSError("the container has exited")
            _setns(target_ns)
            try:
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:
                        code = _helper(argv, file_actions, pid_file, report_w, title)
                    finally:
                        os._exit(code)
            finally:
                _setns(own_ns)  # later children of the shim stay in the host's namespace
        except BaseException:
            os.close(report_r)
            raise
        finally:
            os.close(report_w)
            os.close(target_ns)
            os.close(own_ns)
        os.set_blocking(report_r, False)
        return cls(pid, report_r)

    def read(self) -> list[str]:
        """Report lines that arrived; at EOF with no exit reported, the exec died with its container."""
        lines = []
        while not self.closed:
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                self.closed = True
                os.close(self.fd)
                if self.status is None:
                    self.status = KILLED_WITH_CONTAINER
                break
            self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            word, _, value = line.decode().partition(" ")
            if word == "exited":
                self.status = int(value)
            lines.append(line.decode())
        return lines

    def wait_started(self, timeout: float) -> int | None:
        """The host pid of the exec'd process, or None if `runc exec` failed or the helper died."""
        while True:
            for line in self.read():
                word, _, value = line.partition(" ")
                if word == "started":
                    return int(value)
                if word == "failed":
                    return None
            if self.closed or not select.select([self.fd], [], [], timeout)[0]:
                return None



def _host_pid(ns_pid: int) -> int | None:
    """The host's pid of our child `ns_pid` (runc wrote the pid seen from inside the container).

    /proc here is the host's, so our children are listed with host pids; NSpid maps them.
    """
    try:
        children = Path("/proc/thread-self/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            status = Path(f"/proc/{child}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == str(ns_pid):
                return int(child)
    return None


def _helper(argv: list[str], file_actions: list[Any], pid_file: Path, report: int, title: str) -> int:
    """The helper process: run `runc exec`, then reap everything, reporting the exec'd process."""
    setproctitle(title)
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    runtime = os.posix_spawnp(argv[0], argv, os.environ, file_actions=file_actions, setsigmask=())
    os.closerange(3, report)  # hold none of the shim's descriptors (the output pipes must reach EOF)
    os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
    _, runtime_status = os.waitpid(runtime, 0)  # only runc: the exec'd process stays unreaped, so mappable
    try:
        target = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        target = -1
    host_pid = _host_pid(target) if os.waitstatus_to_exitcode(runtime_status) == 0 else None
    if host_pid is None:
        os.write(report, b"failed\n")
        return 1
    os.write(report, f"started {host_pid}\n".encode())
    status = None
    while True:
        if status is not None:
            code = os.waitstatus_to_exitcode(status)
            os.write(report, f"exited {128 - code if code < 0 else code}\n".encode())
            target, status = -1, None
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        if pid == target:
            status = wait_status
