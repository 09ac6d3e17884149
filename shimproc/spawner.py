"""A pre-warmed fork server for shims; the daemon starts it and asks it for shims through
actors/worker/spawner.py.

A fresh interpreter that imports zmq costs ~60 ms and ~8 MiB per shim. The
spawner imports everything a shim needs once, then forks one child per
request: starting a shim costs a fork, and the children share the parent's
pages. It is a child of actord (which reaps it) and, as a child subreaper, the
parent and reaper of the shims and of anything a dead shim leaves behind while
it lives; it exits when actord does, leaving the shims running. Each new shim's
helper moves the shim out of actord's cgroup before the runtime runs (see
actors.service.shim_cgroup), so that a stop of the daemon's cgroup spares it.

Requests arrive on a SOCK_SEQPACKET unix socket: one JSON `ShimConfig` plus the
write end of the caller's ready pipe (SCM_RIGHTS). The reply is the shim's pid,
in decimal.

A shim shares the spawner's pages until one of the two writes to a page, and
Python writes wherever it runs (reference counts, allocator pools, bytecode
caches). So:
  * the spawner only accepts a connection and forks: the request is read,
    answered with the shim's pid and parsed by a short-lived helper of the new
    shim (see shimproc.helper). Every page the spawner writes after a fork is one
    that each shim forked before stops sharing; this loop writes some 25 per
    start (it was 140);
  * it forks without the interpreter's at-fork hooks (shimproc.helper.fork), which
    would copy ~600 KiB of shared pages into every shim; that takes a spawner
    with no Python thread but its main one, which a test checks;
  * the signal dispositions shims need are set here, once, and inherited (so
    the spawner, too, ignores TERM, INT and HUP: it ends with its lifeline);
  * the wire code each shim runs is run here first (`_warm_up`), so that CPython's
    rewriting of new bytecode happens once, in pages the shims then share;
  * gc.freeze() after the imports: a collection in a shim never walks (and
    writes the GC headers of) what it inherited;
  * `subprocess` is imported, though nothing here calls it, before the shim's own
    modules: it was while the daemon's side of the spawner lived in this module, and
    without it each shim keeps more private pages (the objects it and `locale` make
    change where the allocator puts the shim's modules, whose pages every shim
    writes). Private memory per shim (median of 20 shims; median of 10 runs): 1576 kB
    with it, 1664 kB without, 1612 kB before the move.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import select
import signal
import socket
import subprocess  # noqa: F401 (laid out before the shim's modules: see the docstring)
import sys
from typing import Any, NoReturn

from setproctitle import setproctitle

from actors.wire import MAX_SHIM_MESSAGE, pack, unpack
from actors.wire import messages as wire
from actors.wire.outputlog import STDERR, pack_record
from actors.wire.shim import ShimConfig, ready_line, spawn_reply
from hostos.cgroupprocs import move_into
from hostos.fdwait import reader_gone
from shimproc.helper import fork, in_helper
from shimproc.reaper import Reaper, become_subreaper, set_signals
from shimproc.shim import run_shim

__all__ = ["serve"]

_MAX_REQUEST = 64 << 10
_REQUEST_TIMEOUT = 5.0
"""Seconds a new shim waits for its request on an accepted connection."""


def _take_request(conn_fd: int, shim_cgroups: tuple[str, ...]) -> tuple[dict[str, Any], list[int]]:
    """In the new shim's helper: the request on its connection, answered with the shim's pid;
    the shim moved into its cgroups; the configuration and the ready pipe, or an error if the
    request is malformed, its starter gave up (a shim now would run unowned) or the move failed
    (the starter hears why)."""
    with socket.socket(fileno=conn_fd) as conn:
        conn.settimeout(_REQUEST_TIMEOUT)
        message, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 1)
        if len(fds) != 1 or reader_gone(fds[0]):
            return {"error": "no request, or its starter gave up"}, []
        config = ShimConfig.from_json(message)
        conn.sendall(spawn_reply(os.getppid()))
    try:
        move_into(shim_cgroups, os.getppid())
    except OSError as exc:
        error = f"cannot move the shim into the cgroup {exc.filename}: {exc.strerror} (see actord start --shim-cgroup)"
        os.write(fds[0], ready_line({"ok": False, "error": error}))
        return {"error": error}, []
    return {"config": dataclasses.asdict(config)}, fds


def _become_shim(conn_fd: int, closers: list[int], shim_cgroups: tuple[str, ...]) -> NoReturn:
    """In a new child: take the request on `conn_fd` (through a helper) and run its shim."""
    code = 2
    try:
        for fd in closers:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        request, fds = in_helper(lambda: _take_request(conn_fd, shim_cgroups))
        os.close(conn_fd)
        if "config" in request:
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(null, target)
            os.close(null)
            code = run_shim(ShimConfig(**request["config"]), fds[0])
    finally:
        os._exit(code)


def _fork_loop(listener: socket.socket, lifeline: int, reaper: Reaper, shim_cgroups: tuple[str, ...]) -> None:
    """Fork a shim per connection until the lifeline closes. Little runs here but C calls and
    the reaping, which is the same code every shim runs (pages they have written anyway)."""
    listen_fd = listener.fileno()
    poller = select.poll()
    for fd in (listen_fd, lifeline, reaper.wake_fd):
        poller.register(fd, select.POLLIN)
    closers = [listen_fd, lifeline, *reaper.fds]
    while True:
        for fd, _ in poller.poll():
            if fd == listen_fd:
                try:
                    # the C call under accept(), which would build a socket object here each time
                    conn_fd, _ = listener._accept()  # type: ignore[attr-defined]
                except OSError:  # the caller went away meanwhile
                    continue
                if fork() == 0:
                    _become_shim(conn_fd, closers, shim_cgroups)
                os.close(conn_fd)  # after a failed fork, the caller sees the connection closed
            elif fd == lifeline:
                return
            else:
                reaper.clear_wakeups()
                reaper.reap()
                reaper.statuses.clear()


def _warm_up() -> None:
    """Run the wire code every shim runs, here, before forking: CPython 3.11 rewrites a
    function's bytecode in place during its first calls (quickening, specialisation), and if
    that happened in each shim, each would copy the pages it is written in."""
    control = pack(wire.encode(wire.ShimControl(op="start", timeout=1.0)))
    for _ in range(64):
        wire.decode(unpack(control, limit=MAX_SHIM_MESSAGE))
        pack(wire.encode(wire.ShimAck(ok=True)))
        pack(wire.encode(wire.ShimExit(token="", container_id="", process="", status=0, shim_pid=0)))
        ready_line({"ok": True, "pid": 1, "start": 1})
        ready_line({"ok": False, "error": "warm-up"})
        pack_record(STDERR, 0.0, b"warm-up")


def serve(socket_path: str, lifeline: int, ready_fd: int, title: str, shim_cgroups: tuple[str, ...]) -> None:
    """Run the fork server until the daemon's lifeline pipe closes."""
    setproctitle(title)
    become_subreaper()
    set_signals()
    reaper = Reaper()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    _warm_up()
    gc.collect()
    gc.freeze()
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    _fork_loop(listener, lifeline, reaper, shim_cgroups)
    listener.close()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], tuple(json.loads(sys.argv[5])))
