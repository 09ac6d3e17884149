"""Where things live in the state dir (`--state-dir`; the persistent root is `rootdir.py`),
and how JSON files there are written safely.

    <state>/actord.lock           flock held by the running daemon
    <state>/actord.sock           control socket (ROUTER)
    <state>/events.sock           event stream (PUB)
    <state>/shim.sock             shim reports (PULL)
    <state>/spawner.sock          the pre-warmed shim spawner
    <state>/events.log            event log (msgpack records)
    <state>/runc/                 runc's own state (--root)
    <state>/shims/<token>.sock    a shim's control socket (<token>.tty: its console socket)
    <state>/output/<token>/       captured output of a process (kept a while after it exits)
    <state>/netns/<pod id>        a CRI pod's network namespace, bind-mounted (actors/podnet/netns.py)
    <state>/pods/<pod id>/shm     a CRI pod's /dev/shm, a tmpfs (actors/pods/shm.py)
    <state>/criu/<name>/          CRIU work dirs of checkpoints and restores (removed after use)
    <state>/containers/<id>/container.json
    <state>/containers/<id>/config.json   the OCI config runc runs the container with (copied at start)
    <state>/containers/<id>/<process>/{meta.json, state.json, process.json, pid, log.json, exit.json}

Every file there is written with `hostos.atomicfile`'s helpers, which the shim uses too
(`exit.json`, the output log).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from hostos.atomicfile import write_file_atomic

__all__ = ["IPC_PATH_MAX", "NO_SPACE", "StateDir", "write_json_atomic"]

IPC_PATH_MAX = 107
"""sizeof(sockaddr_un.sun_path) - 1: longer ipc paths cannot be bound."""

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
"""errnos of a full filesystem (or quota): the state dir has no room for what was to be written."""


class StateDir:
    """Paths under one daemon's state directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(root))

    @property
    def lock_file(self) -> Path:
        return self.root / "actord.lock"

    @property
    def control_socket(self) -> Path:
        return self.root / "actord.sock"

    @property
    def events_socket(self) -> Path:
        return self.root / "events.sock"

    @property
    def shim_socket(self) -> Path:
        return self.root / "shim.sock"

    @property
    def daemon_sockets(self) -> tuple[Path, Path, Path]:
        """The sockets actord binds: removed when stale, made private, removed at exit."""
        return self.control_socket, self.events_socket, self.shim_socket

    @property
    def spawner_socket(self) -> Path:
        return self.root / "spawner.sock"

    @property
    def event_log(self) -> Path:
        return self.root / "events.log"

    @property
    def runtime_root(self) -> Path:
        return self.root / "runc"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def shims(self) -> Path:
        return self.root / "shims"

    @property
    def outputs(self) -> Path:
        return self.root / "output"

    def output(self, token: str) -> Path:
        return self.outputs / token

    def shim_control(self, token: str) -> Path:
        return self.shims / f"{token}.sock"

    def shim_console(self, token: str) -> Path:
        return self.shims / f"{token}.tty"

    @property
    def netns(self) -> Path:
        """The pods' network namespaces."""
        return self.root / "netns"

    @property
    def pods(self) -> Path:
        """The pods' /dev/shm tmpfs mounts (actors/pods/shm.py)."""
        return self.root / "pods"

    @property
    def criu_work(self) -> Path:
        return self.root / "criu"

    def container(self, container_id: str) -> Path:
        return self.containers / container_id

    def process(self, container_id: str, process_id: str) -> Path:
        return self.containers / container_id / process_id

    def ipc(self, path: Path) -> str:
        """The `ipc://` address of a socket file, refusing paths the kernel cannot bind."""
        if len(str(path)) > IPC_PATH_MAX:
            raise ValueError(
                f"socket path {path} is {len(str(path))} bytes; ipc paths are limited to "
                f"{IPC_PATH_MAX}: choose a shorter --state-dir"
            )
        return f"ipc://{path}"

    def check_socket_paths(self) -> None:
        """Raise ValueError if any socket this daemon or a shim binds would be too long."""
        longest_token = "0" * 32
        for path in (self.control_socket, self.events_socket, self.shim_socket, self.spawner_socket,
                     self.shim_control(longest_token), self.shim_console(longest_token)):
            self.ipc(path)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """Write a JSON file so that readers see the old or the new content, never a torn one."""
    write_file_atomic(path, json.dumps(data, separators=(",", ":")).encode(), durable=durable)

