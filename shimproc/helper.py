"""The fork without the interpreter's hooks, and the short-lived helper child a shim runs its
one-off work in.

A shim shares the spawner's pages until one of them writes to a page, and Python writes
wherever it runs, so each library function a shim runs costs it a few pages for good: work done
once (reading the spawner's request, the runtime's create and start calls) runs in a helper
child, whose copies die with it, and hands back plain data and fds (see shimproc.shim).
"""

from __future__ import annotations

import _socket
import array
import ctypes
import os
import signal
import socket
from collections.abc import Callable
from typing import Any

from actors.wire import MAX_SHIM_MESSAGE, pack, unpack
from hostos.libc import LIBC

__all__ = ["Work", "fork", "in_helper"]

PR_SET_PDEATHSIG = 1
HELPER_FDS_MAX = 8
_HELPER_FDS_SPACE = socket.CMSG_SPACE(HELPER_FDS_MAX * 4)

_libc_fork = ctypes.PyDLL(None).fork

Work = Callable[[], tuple[dict[str, Any], list[int]]]
"""One-off work for a helper: a message (plain data) and fds to hand back."""


def fork() -> int:
    """fork(2) without the interpreter's at-fork hooks; -1 if it fails.

    os.fork() runs them: in the child, threading, random and logging rebuild their state
    (copying ~600 KiB of pages a shim would otherwise share with the spawner), in the parent
    logging takes and releases its lock. They repair what other Python threads may have left
    mid-way; the spawner and the shims have no Python thread but their main one (ZeroMQ's
    threads are C threads) and hold no lock while they fork, so a child goes on with the
    state as it is: its one thread keeps its identity, and nothing here uses random. libc's
    own at-fork handlers (malloc's locks) still run. Called with the GIL held (PyDLL).
    """
    pid: int = _libc_fork()
    return pid


def in_helper(work: Work) -> tuple[dict[str, Any], list[int]]:
    """Run `work` in a short-lived child (killed if we die) and return its message and fds;
    {"error": ...} if it failed or died. The pages the helper writes die with it, while the
    shim would carry them for its whole life. (The channel is a bare `_socket` pair read with
    recvmsg: socket.socketpair and socket.recv_fds cost a shim some 200 KiB of pages.)"""
    ours, theirs = _socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    shim = os.getpid()
    pid = fork()
    if pid == 0:
        code = 2
        try:
            ours.close()
            LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() == shim:
                try:
                    message, fds = work()
                except Exception as exc:
                    message, fds = {"error": f"shim helper failed: {type(exc).__name__}: {exc}"}, []
                theirs.sendmsg([pack(message)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                code = 0
        finally:
            os._exit(code)
    theirs.close()
    if pid < 0:
        ours.close()
        return {"error": "cannot fork a shim helper"}, []
    data, ancillary, _, _ = ours.recvmsg(MAX_SHIM_MESSAGE, _HELPER_FDS_SPACE)
    ours.close()
    fds = [fd for _, _, payload in ancillary for fd in memoryview(payload).cast("i")]  # SCM_RIGHTS only
    os.waitpid(pid, 0)
    if not data:
        return {"error": "the shim's helper died"}, fds
    return unpack(data, limit=MAX_SHIM_MESSAGE), fds
