"""Where things live in the state dir (`--state-dir`; the persistent root is `rootdir.py`),
and how files there are written safely.

    <state>/actord.lock           flock held by the running daemon
    <state>/actord.sock           control socket (ROUTER)
    <state>/events.sock           event stream (PUB)
    <state>/shim.sock             shim reports (PULL)
    <state>/spawner.sock          the pre-warmed shim spawner
    <state>/events.log            event log (msgpack records)
    <state>/runc/                 runc's own state (--root)
    <state>/shims/<token>.sock    a shim's control socket (<token>.tty: its console socket)
    <state>/output/<token>/       captured output of a process (kept a while after it exits)
    <state>/criu/<name>/          CRIU work dirs of checkpoints and restores (removed after use)
    <state>/containers/<id>/container.json
    <state>/containers/<id>/config.json   the OCI config runc runs the container with (copied at start)
    <state>/containers/<id>/<process>/{meta.json, state.json, process.json, pid, log.json, exit.json}

Both the daemon and the shim import this module, so it stays free of heavy imports,
and the file helpers take plain strings as well as paths: a shim avoids pathlib (every
library function it runs after the fork costs pages it would share with the spawner).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["IPC_PATH_MAX", "NO_SPACE", "StateDir", "append_record", "describe_os_error", "remove_file",
           "reserve_file", "write_all", "write_file_atomic", "write_json_atomic"]

IPC_PATH_MAX = 107
"""sizeof(sockaddr_un.sun_path) - 1: longer ipc paths cannot be bound."""

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})
"""errnos of a full filesystem (or quota): the state dir has no room for what was to be written."""


def describe_os_error(exc: OSError) -> str:
    """An OSError as a phrase to put in a sentence: "no space left on device"."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


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


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`: a write may store only part of it (a filling disk does that
    just before ENOSPC). OSError when the rest cannot be written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def append_record(fd: int, size: int, record: bytes) -> int:
    """Append `record` to the file open with O_APPEND on `fd`, now `size` bytes; the new size.

    A record is stored whole or not at all: when it cannot be written the file is cut
    back to `size` (no torn record for a reader to trip on) and the OSError is raised.
    """
    try:
        write_all(fd, record)
    except OSError:
        os.ftruncate(fd, size)
        raise
    return size + len(record)


def remove_file(path: str | os.PathLike[str]) -> None:
    """Remove a file if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _temporary(path: str | os.PathLike[str]) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp")


def reserve_file(path: str | os.PathLike[str], size: int = 4096) -> None:
    """Allocate the space a later `write_file_atomic(path, ...)` of up to `size` bytes writes
    into, so that it succeeds even when the disk has filled up meanwhile."""
    fd = os.open(_temporary(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, b" " * size)
    finally:
        os.close(fd)


def write_file_atomic(path: str | os.PathLike[str], payload: bytes, *, durable: bool = True) -> None:
    """Replace a file so that readers see the old or the new content, never a torn one.

    The content is written over the temporary file's old bytes (space `reserve_file` may
    have set aside) and cut to length. When anything fails the temporary file is removed
    (it would hold space on a full disk) and the OSError is raised; the old file is untouched.
    """
    tmp = _temporary(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, payload)
            os.ftruncate(fd, len(payload))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        remove_file(tmp)
        raise
    if durable:
        dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, durable: bool = True) -> None:
    """Write a JSON file so that readers see the old or the new content, never a torn one."""
    write_file_atomic(path, json.dumps(data, separators=(",", ":")).encode(), durable=durable)

