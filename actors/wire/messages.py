"""Every message that crosses a socket between actors, shims and the daemon, defined once.

A message is a frozen dataclass with a `kind`; on the wire it is a msgpack map with
`type` set to that kind and one member per field. `encode` makes the map, `decode`
checks a received map against the dataclass's own annotations (the only schema there
is) and builds the message, so a handler can trust every field it reads.

Names: `container_id` is a container's id, `process` a process's name in its container
("init", "exec-1"), `token` a process's unique id; an OS process id always ends in `_pid`.
Runtime jobs carry named parameters (`actors/wire/jobs.py`), never positional lists.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from actors.wire.codec import WireError
from actors.wire.events import EventType
from actors.wire.jobs import check_job
from actors.wire.schema import Field, check_fields, field
from actors.wire.shim import ControlOp

__all__ = [
    "KINDS",
    "ClientReply",
    "Emit",
    "ExecTask",
    "ImageBundleDone",
    "ImageBundleTask",
    "Inspect",
    "Message",
    "Oom",
    "ProcessExit",
    "Publish",
    "Recorded",
    "ReleaseImageBundle",
    "Replay",
    "Request",
    "RestartDue",
    "RuntimeDone",
    "RuntimeTask",
    "ShimAck",
    "ShimControl",
    "ShimDied",
    "ShimExit",
    "ShimGone",
    "StartDone",
    "StartTask",
    "Stop",
    "Storage",
    "Tick",
    "WatchProcess",
    "decode",
    "encode",
]

class Message:
    """Base of every message; `kind` is its `type` on the wire."""

    __slots__ = ()
    kind: ClassVar[str]


KINDS: dict[str, type[Message]] = {}
"""kind -> message class."""

_M = typing.TypeVar("_M", bound=type[Message])


@typing.dataclass_transform(frozen_default=True, kw_only_default=True)
def _message(cls: _M) -> _M:
    """Make `cls` a frozen dataclass and register it under its kind."""
    final = dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)
    KINDS[final.kind] = final
    return typing.cast(_M, final)


@_message
class Request(Message):
    """Bus -> Supervisor: a client request. `route` is the ROUTER identity; `peer` who sent it
    as the kernel tells (ipc: uid, gid, pid) or its address (and CURVE key)."""

    kind = "request"
    route: bytes
    request_id: str
    method: str
    params: dict[str, Any]
    peer: dict[str, Any] | None = None


@_message
class ClientReply(Message):
    """Anything -> bus: one reply to a client."""

    kind = "reply"
    route: bytes
    body: dict[str, Any]


@_message
class Publish(Message):
    """The image service -> EventLog: an event to publish as it is, neither numbered nor kept
    (an image pull's progress)."""

    kind = "publish"
    topic: str
    event: dict[str, Any]


@_message
class RestartDue(Message):
    """The Supervisor's restart alarm -> the Supervisor: a restart policy's next attempt is due."""

    kind = "restart_due"


@_message
class Tick(Message):
    """Bus -> EventLog, once a second: publish a heartbeat."""

    kind = "tick"


@_message
class Stop(Message):
    """Main thread -> bus: close the sockets and end the IO thread."""

    kind = "stop"


@_message
class StartTask(Message):
    """Supervisor -> Worker: start a container's init process (or restore it from a checkpoint)."""

    kind = "start_task"
    worker: str = ""
    token: str
    container_id: str
    bundle: str
    labels: dict[str, str]
    stdin: bool = False
    checkpoint: str | None = None
    init: bool = False
    config: str = ""
    """The config.json to run (a restart's, kept in the root); empty: the bundle's."""
    keep_config: bool = False
    """Keep the bytes of the config.json read in the root, for the restarts of a restart policy."""
    cri_log: str = ""
    """The init's CRI log (`ShimConfig.cri_log`); empty: none."""


@_message
class ExecTask(Message):
    """Supervisor -> Worker: one more process in a running container (its defaults come from the
    container's own copy of its config, never from the bundle)."""

    kind = "exec_task"
    worker: str = ""
    token: str
    container_id: str
    process: str
    spec: dict[str, Any]
    stdin: bool = False
    log_limit: int = 0
    """Bytes per file of its captured output (two are kept); 0: the daemon's --log-limit."""


@_message
class StartDone(Message):
    """Worker -> Supervisor: the outcome of a StartTask or ExecTask; `started` has the process's
    pids, pidfd, args and tty when it is running, `error` {code, message} when not."""

    kind = "start_done"
    worker: str
    token: str
    container_id: str
    ok: bool
    error: dict[str, Any] | None = None
    started: dict[str, Any] | None = None


@_message
class RuntimeTask(Message):
    """Supervisor -> Worker: one blocking job (`actors/wire/jobs.py` names each and its params);
    the reply goes to `route` when there is one."""

    kind = "runtime_task"
    worker: str = ""
    job: str
    container_id: str
    params: dict[str, Any]
    route: bytes | None = None
    request_id: str | None = None


@_message
class RuntimeDone(Message):
    kind = "runtime_done"
    worker: str
    job: str
    container_id: str
    params: dict[str, Any]
    ok: bool
    error: dict[str, Any] | None = None
    result: Any = None
    route: bytes | None = None
    request_id: str | None = None


@_message
class WatchProcess(Message):
    """Worker (or restore) -> Monitor: a started process whose shim is to be watched. With an OOM
    watch (an init's): the fd to poll, "v1" or "v2", the memory cgroup dir."""

    kind = "watch_process"
    token: str
    container_id: str
    process: str
    shim_pid: int
    procdir: str
    oom_fd: int = -1
    oom_kind: str | None = None
    cgroup: str | None = None
    oom_kills: int = 0
    """The cgroup's OOM kills when the watch was made (before `runc start`): the ones after it are news."""


@_message
class ShimExit(Message):
    """Shim -> daemon (ipc PUSH): the container process exited."""

    kind = "shim_exit"
    token: str
    container_id: str
    process: str
    status: int
    shim_pid: int
    oom_kills: int | None = None
    """An init's: its memory cgroup's OOM-kill count, read before `runc delete` removes the
    cgroup (the Monitor may come to read it only after), None if unknown."""


@_message
class ShimControl(Message):
    """Daemon -> shim (its own control socket), answered by `ShimAck`. `op`: start, write_stdin,
    close_stdin, resize, reopen_log (of the init's CRI log)."""

    kind = "shim_control"
    op: ControlOp
    data: bytes | None = None
    width: int | None = None
    height: int | None = None
    timeout: float | None = None
    oom_control: str | None = None
    """start, of an init with an OOM watch: its memory cgroup's file with the `oom_kill` count
    (v1 memory.oom_control, v2 memory.events), which the shim reads for its exit report."""


@_message
class ShimAck(Message):
    kind = "shim_ack"
    ok: bool
    error: str | None = None


@_message
class ProcessExit(Message):
    """Monitor -> Supervisor: a process exit, exactly once per process."""

    kind = "process_exit"
    token: str
    container_id: str
    process: str
    status: int


@_message
class Oom(Message):
    """Monitor -> Supervisor: the container's memory cgroup killed a process."""

    kind = "oom"
    container_id: str
    token: str


@_message
class ShimDied(Message):
    """Monitor -> Supervisor: a shim died without recording its process's exit."""

    kind = "shim_died"
    token: str
    container_id: str
    process: str


@_message
class ShimGone(Message):
    """Monitor -> Supervisor: the shim of a process has exited (after its ProcessExit)."""

    kind = "shim_gone"
    token: str
    container_id: str
    process: str


@_message
class Emit(Message):
    """Supervisor -> EventLog: record and publish an event, then send `reply` (if any) to the
    client at `route`: a client hears of a change only once its event is on record (when it
    cannot be written now, on a full disk, the client gets a `storage_full` error instead)."""

    kind = "emit"
    event: EventType
    container_id: str
    process: str | None = None
    status: int | None = None
    token: str | None = None
    attempt: int | None = None
    route: bytes | None = None
    reply: dict[str, Any] | None = None


@_message
class Inspect(Message):
    """Supervisor -> Inspector: read a process's output or a container's cgroup stats and
    answer the client."""

    kind = "inspect"
    what: str
    route: bytes
    request_id: str
    target: dict[str, Any]


@_message
class Recorded(Message):
    """EventLog -> Supervisor: the exit event of process `token` is on record."""

    kind = "recorded"
    token: str


@_message
class Storage(Message):
    """EventLog -> Supervisor: the state dir's storage is degraded (`reason`: why) or fine again."""

    kind = "storage"
    degraded: bool
    reason: str | None = None


@_message
class ImageBundleTask(Message):
    """Supervisor -> ImageService: make the bundle of a container of `image` (a reference or an
    image id; `args` replace its Cmd), then answer `ImageBundleDone` carrying `params` (the
    start request's, checked) back."""

    kind = "image_bundle_task"
    container_id: str
    image: str
    args: list[str] | None = None
    terminal: bool = False
    route: bytes
    request_id: str
    params: dict[str, Any]


@_message
class ImageBundleDone(Message):
    """ImageService -> Supervisor: the bundle made (`bundle`, its dir) or why not (`error`
    {code, message}); the start goes on with `params`."""

    kind = "image_bundle_done"
    container_id: str
    bundle: str | None = None
    error: dict[str, Any] | None = None
    route: bytes
    request_id: str
    params: dict[str, Any]


@_message
class ReleaseImageBundle(Message):
    """Supervisor -> ImageService: the container is gone for good: unmount and remove its bundle."""

    kind = "release_image_bundle"
    container_id: str


@_message
class Replay(Message):
    """Supervisor -> EventLog: answer an events.replay request."""

    kind = "replay"
    route: bytes
    request_id: str
    params: dict[str, Any]


def _fields(cls: type[Message]) -> list[Field]:
    hints = typing.get_type_hints(cls)
    return [field(member.name, hints[member.name],
                  member.default is dataclasses.MISSING and member.default_factory is dataclasses.MISSING)
            for member in dataclasses.fields(cls)]  # type: ignore[arg-type]  # every Message is a dataclass


_SCHEMAS: dict[str, list[Field]] = {kind: _fields(cls) for kind, cls in KINDS.items()}


_NAMES: dict[str, tuple[str, ...]] = {kind: tuple(name for name, *_ in schema) for kind, schema in _SCHEMAS.items()}


def encode(message: Message) -> dict[str, Any]:
    """The wire map of a message. (A plain loop over a tuple of names: a shim encodes in pages it
    shares with its spawner, and each object touched there is a page copied.)"""
    data: dict[str, Any] = {"type": message.kind}
    for name in _NAMES[message.kind]:
        data[name] = getattr(message, name)
    return data


def decode(data: Any) -> Message:
    """The message a received map holds; `WireError` if it is not exactly one."""
    if not isinstance(data, dict):
        raise WireError("a message must be a map")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        raise WireError(f"unknown message type {kind!r}")
    schema = _SCHEMAS[kind]
    values = check_fields(kind, schema, data, skip="type")
    if kind in ("runtime_task", "runtime_done"):
        check_job(data["job"], data["params"])
    return KINDS[kind](**values)
