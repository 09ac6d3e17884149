"""Between the daemon and a shim, besides the messages (`messages.py`): the spawner's request
(a `ShimConfig`, JSON, with the ready pipe's fd) and its reply (the shim's pid, in decimal),
and the ready line the shim writes on that pipe once its process is created (`ShimReady`); how
long both ends of a shim's control socket wait for acknowledgements in flight.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

from actors.wire.outputlog import DEFAULT_LIMIT

__all__ = ["CONTROL_LINGER_MS", "ROOTFS_MOUNT", "ControlOp", "ShimConfig", "ShimReady", "parse_ready",
           "parse_spawn_reply", "ready_line", "spawn_reply"]

CONTROL_LINGER_MS = 1000
"""How long acknowledgements already sent may take to reach their worker once the shim ends (a
start's ack must not be dropped because the process exited at once); a worker that finds the
shim's control socket gone waits as long for an ack still on its way."""

ROOTFS_MOUNT = "rootfs"
"""The container's rootfs bind mount in its state dir (`ShimConfig.bundle` of its init), which
the daemon makes at start and an init's shim detaches once the runtime deleted the container."""

ControlOp = Literal["start", "write_stdin", "close_stdin", "resize", "reopen_log"]
"""What a `ShimControl` message asks of a shim."""


@dataclass(frozen=True)
class ShimConfig:
    """Everything one shim needs; plain data so it can cross a socket as JSON.

    `mode` is "create" (a container's init), "exec" (a further process, from
    `<procdir>/process.json`) or "restore" (an init restored from `checkpoint`).
    `bundle` is the runtime bundle: the container's state dir, holding the copy
    of config.json taken at start.
    """

    container_id: str
    process: str
    token: str
    bundle: str
    procdir: str
    output_dir: str
    runtime: str
    runtime_root: str
    report_address: str
    control_path: str
    console_path: str
    mode: str = "create"
    tty: bool = False
    stdin: bool = False
    checkpoint: str = ""
    restore_args: list[str] = field(default_factory=list)
    log_limit: int = DEFAULT_LIMIT
    work_path: str = ""
    """For a restore: CRIU's work directory (in the state dir, removed afterwards)."""
    cri_log: str = ""
    """An init's CRI log (actors/wire/crilog.py): the file its output is also written to, in
    the kubelet's format; empty: none. The shim checks it (`cri_log_problem`) on receipt."""

    @property
    def is_init(self) -> bool:
        return self.mode != "exec"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> ShimConfig:
        return cls(**json.loads(text))


def spawn_reply(pid: int) -> bytes:
    return b"%d" % pid


def parse_spawn_reply(data: bytes) -> int:
    """The new shim's pid; ValueError if `data` is not one."""
    return int(data)


class ShimReady(TypedDict):
    """The shim's one line on the ready pipe: created (`pid` and its `start` time) or not (`error`)."""

    ok: bool
    pid: NotRequired[int]
    start: NotRequired[int | None]
    error: NotRequired[str]


def ready_line(reply: ShimReady) -> bytes:
    return json.dumps(reply).encode() + b"\n"


def parse_ready(data: bytes) -> ShimReady | None:
    """The ready line's reply; None if it is not one (a shim that died mid-line)."""
    try:
        reply: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return None
    if not reply["ok"]:
        return ShimReady(ok=False, error=str(reply.get("error")))
    pid, start = reply.get("pid"), reply.get("start")
    if not isinstance(pid, int) or pid <= 0 or not (start is None or isinstance(start, int)):
        return None
    return ShimReady(ok=True, pid=pid, start=start)
