"""A pre-warmed fork server for shims.

A fresh interpreter that imports zmq costs ~60 ms and ~8 MiB per shim. The
spawner imports everything a shim needs once, then forks one child per
request: starting a shim costs a fork, and the children share the parent's
pages. It is a child of actord (which reaps it) and, as a child subreaper, the
parent and reaper of the shims and of anything a dead shim leaves behind while
it lives; it exits when actord does, leaving the shims running.

Requests arrive on a SOCK_SEQPACKET unix socket: one JSON `ShimConfig` plus the
write end of the caller's ready pipe (SCM_RIGHTS). The reply is `{"pid": N}`.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from setproctitle import setproctitle

from actors.fdwait import reader_gone, readable
from shimproc.config import ShimConfig
from shimproc.shim import Reaper, become_subreaper, run_shim

__all__ = ["Spawner", "SpawnedShim", "serve"]

_MAX_REQUEST = 64 << 10


@dataclass(frozen=True)
class SpawnedShim:
    """A started shim: its pid and the read end of its ready pipe (owned by the caller)."""

    pid: int
    ready_fd: int


class Spawner:
    """Daemon side: starts the fork server and asks it for shims (thread-safe)."""

    def __init__(self, socket_path: Path, title: str) -> None:
        self.socket_path = socket_path
        self.title = title
        self._lock = threading.Lock()
        self._server: subprocess.Popen[bytes] | None = None
        self._lifeline = -1

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
             str(lifeline_r), str(ready_w), self.title],
            pass_fds=(lifeline_r, ready_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(lifeline_r)
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            if ready.read(1) != b"1":
                raise RuntimeError("the shim spawner failed to start")

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
            pid = int(json.loads(reply)["pid"])
        except BaseException:
            os.close(ready_r)
            raise
        finally:
            os.close(ready_w)
        return SpawnedShim(pid=pid, ready_fd=ready_r)


def _fork_shim(conn: socket.socket, listener: socket.socket, closers: list[int]) -> None:
    message, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 1)
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return
    ready_w = fds[0]
    try:
        config = ShimConfig.from_json(message)
    except (ValueError, TypeError):
        os.close(ready_w)
        return
    if reader_gone(ready_w):  # the starter gave up waiting for us: a shim now would run unowned
        os.close(ready_w)
        return
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            listener.close()
            conn.close()
            signal.set_wakeup_fd(-1)
            for fd in closers:
                os.close(fd)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(null, target)
            os.close(null)
            code = run_shim(config, ready_w)
        finally:
            os._exit(code)
    os.close(ready_w)
    conn.sendall(json.dumps({"pid": pid}).encode())


def serve(socket_path: str, lifeline: int, ready_fd: int, title: str) -> None:
    """Run the fork server until the daemon's lifeline pipe closes."""
    setproctitle(title)
    become_subreaper()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reaper = Reaper()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    gc.collect()
    gc.freeze()  # keep forked shims from copying pages just to update GC headers
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    closers = [lifeline, *reaper.fds]
    while True:
        ready = readable([listener.fileno(), lifeline, reaper.wake_fd], None)
        if reaper.wake_fd in ready:
            reaper.clear_wakeups()
            reaper.reap()
            reaper.statuses.clear()
        if lifeline in ready:
            break
        if listener.fileno() in ready:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                try:
                    _fork_shim(conn, listener, closers)
                except OSError:
                    pass
    listener.close()
    try:
        os.unlink(socket_path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
