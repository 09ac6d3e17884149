"""A pre-warmed fork server for shims.

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
    shim (see shimproc.shim). Every page the spawner writes after a fork is one
    that each shim forked before stops sharing; this loop writes some 25 per
    start (it was 140);
  * it forks without the interpreter's at-fork hooks (shimproc.shim.fork), which
    would copy ~600 KiB of shared pages into every shim; that takes a spawner
    with no Python thread but its main one, which a test checks;
  * the signal dispositions shims need are set here, once, and inherited (so
    the spawner, too, ignores TERM, INT and HUP: it ends with its lifeline);
  * the wire code each shim runs is run here first (`_warm_up`), so that CPython's
    rewriting of new bytecode happens once, in pages the shims then share;
  * gc.freeze() after the imports: a collection in a shim never walks (and
    writes the GC headers of) what it inherited.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from setproctitle import setproctitle

from actors.wire import MAX_SHIM_MESSAGE, pack, unpack
from actors.wire import messages as wire
from actors.wire.outputlog import STDERR, pack_record
from actors.wire.shim import ShimConfig, parse_spawn_reply, ready_line, spawn_reply
from hostos.cgroupprocs import move_into
from hostos.fdwait import reader_gone
from shimproc.shim import Reaper, become_subreaper, fork, in_helper, run_shim, set_signals

__all__ = ["SpawnedShim", "Spawner", "serve"]

_MAX_REQUEST = 64 << 10
_REQUEST_TIMEOUT = 5.0
"""Seconds a new shim waits for its request on an accepted connection."""


@dataclass(frozen=True)
class SpawnedShim:
    """A started shim: its pid and the read end of its ready pipe (owned by the caller)."""

    pid: int
    ready_fd: int


class Spawner:
    """Daemon side: starts the fork server and asks it for shims (thread-safe).

    `shim_cgroups` are the `cgroup.procs` files each new shim moves itself into (see
    actors.service.shim_cgroup); none: shims stay in the spawner's cgroup.
    """

    def __init__(self, socket_path: Path, title: str, shim_cgroups: tuple[str, ...] = ()) -> None:
        self.socket_path = socket_path
        self.title = title
        self.shim_cgroups = shim_cgroups
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._lifeline = -1
        self._restart_error: str | None = None

    def start(self) -> None:
        """Start the server and wait until it listens."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._server is not None:
            self._server.kill()
            self._server.wait()
            os.close(self._lifeline)
        lifeline_r, self._lifeline = os.pipe2(os.O_CLOEXEC)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        self._server = subprocess.Popen(
            [sys.executable, "-I", "-m", "shimproc.spawner", str(self.socket_path),
             str(lifeline_r), str(ready_w), self.title, json.dumps(self.shim_cgroups)],
            pass_fds=(lifeline_r, ready_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(lifeline_r)
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            if ready.read(1) != b"1":
                raise RuntimeError("the shim spawner failed to start")

    def revive(self) -> None:
        """Restart a server that has died (the daemon checks each second), so that neither the
        next start pays for it nor `health` reports it for longer than that."""
        with self._lock:
            if self._server is None or self._server.poll() is None:
                return  # alive, or not started (or stopped)
            try:
                self._start_locked()
            except (OSError, RuntimeError) as exc:
                self._restart_error = str(exc)
            else:
                self._restart_error = None

    def trouble(self) -> str | None:
        """Why the server is down, or None. Never blocks (the Supervisor asks)."""
        server = self._server
        if server is None or server.poll() is None:
            return None
        if self._restart_error is not None:
            return f"the shim spawner exited and cannot be restarted: {self._restart_error}"
        return f"the shim spawner exited ({server.returncode}); restarting it"

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                os.close(self._lifeline)
                try:
                    self._server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._server.kill()
                    self._server.wait()
                self._server = None

    def spawn(self, config: ShimConfig, timeout: float) -> SpawnedShim:
        """Fork a shim for `config`; restarts a dead server once."""
        try:
            return self._request(config, timeout)
        except (ConnectionError, FileNotFoundError):
            with self._lock:
                if self._server is None or self._server.poll() is not None:
                    self._start_locked()
            return self._request(config, timeout)

    def _request(self, config: ShimConfig, timeout: float) -> SpawnedShim:
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as conn:
                conn.settimeout(timeout)
                conn.connect(str(self.socket_path))
                socket.send_fds(conn, [config.to_json().encode()], [ready_w])
                reply = conn.recv(4096)
            if not reply:
                raise ConnectionError("the shim spawner closed the connection")
            pid = parse_spawn_reply(reply)
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        return SpawnedShim(pid=pid, ready_fd=ready_r)


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
