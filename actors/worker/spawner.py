"""The daemon's side of the shim spawner: it starts the fork server (`python -I -m
shimproc.spawner`, see there) and asks it for shims.

The daemon knows the shim only as that program and the wire: a request is one JSON
`ShimConfig` plus the write end of the caller's ready pipe (SCM_RIGHTS) on a SOCK_SEQPACKET
unix socket, the reply the new shim's pid, and the shim's ready line comes on the pipe
(actors/wire/shim.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from actors.wire.shim import ShimConfig, parse_spawn_reply

__all__ = ["SpawnedShim", "Spawner"]


@dataclass(frozen=True)
class SpawnedShim:
    """A started shim: its pid and the read end of its ready pipe (owned by the caller)."""

    pid: int
    ready_fd: int


class Spawner:
    """Starts the fork server and asks it for shims (thread-safe).

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
