"""Every message type that crosses a socket, defined once and checked on receipt.

A message is a plain map with a `type` member. Actors build them with `make()`
and the bus checks each one with `validate()` before handing it to an actor, so
a handler can trust the members it reads.
"""

from __future__ import annotations

from typing import Any

from actors.wire.codec import WireError

__all__ = ["SCHEMAS", "make", "validate"]

_Spec = dict[str, tuple[tuple[type, ...], bool]]
"""member name -> (accepted types, required)."""


def _fields(required: dict[str, Any], optional: dict[str, Any] | None = None) -> _Spec:
    spec: _Spec = {}
    for table, needed in ((required, True), (optional or {}, False)):
        for name, kinds in table.items():
            spec[name] = (kinds if isinstance(kinds, tuple) else (kinds,), needed)
    return spec


_NONE = type(None)

SCHEMAS: dict[str, _Spec] = {
    # Client request handed by the bus to the Supervisor; `route` is the ROUTER identity, `peer`
    # who sent it as the kernel tells (ipc: uid, gid, pid) or its address (and CURVE key).
    "request": _fields({"route": bytes, "id": str, "method": str, "params": dict}, {"peer": dict}),
    # Anything -> bus: one reply to a client.
    "reply": _fields({"route": bytes, "body": dict}),
    # EventLog -> bus: one event on the PUB socket.
    "publish": _fields({"topic": str, "event": dict}),
    # Monitor -> bus: poll a raw fd once; the bus answers `fd_ready` and forgets it. `key`
    # names this watch: fd numbers are reused, so a late `fd_ready` is told from a current one.
    "watch_fd": _fields({"fd": int, "key": int}),
    # Monitor -> bus: stop polling a fd (if armed) and close it.
    "forget_fd": _fields({"fd": int}),
    "fd_ready": _fields({"fd": int, "key": int}),
    # Bus -> EventLog, once a second: publish a heartbeat.
    "tick": _fields({}),
    # Main thread -> bus: close the sockets and end the IO thread.
    "stop": _fields({}),
    # Supervisor -> Worker: start a container's init process (or restore it from a checkpoint).
    "start_task": _fields(
        {"worker": str, "token": str, "id": str, "bundle": str, "labels": dict},
        {"stdin": bool, "checkpoint": (str, _NONE), "init": bool},
    ),
    # Supervisor -> Worker: start one more process in a running container (its process
    # defaults come from the container's own copy of its config, never from the bundle).
    "exec_task": _fields(
        {"worker": str, "token": str, "id": str, "pid": str, "spec": dict},
        {"stdin": bool},
    ),
    # Worker -> Supervisor: outcome of a start_task or exec_task.
    "start_done": _fields(
        {"worker": str, "token": str, "id": str, "ok": bool},
        {"error": (dict, _NONE), "process": (dict, _NONE)},
    ),
    # Supervisor -> Worker: one blocking job (runc kill --all, pause, update, checkpoint,
    # a shim control message, ...); the reply goes to `route` when there is one.
    "runtime_task": _fields(
        {"worker": str, "job": str, "id": str, "args": list},
        {"route": (bytes, _NONE), "request_id": (str, _NONE)},
    ),
    "runtime_done": _fields(
        {"worker": str, "job": str, "id": str, "ok": bool, "args": list},
        {"error": (dict, _NONE), "result": (dict, list, str, int, float, bool, bytes, _NONE), "route": (bytes, _NONE),
         "request_id": (str, _NONE)},
    ),
    # Worker -> Monitor: a started process whose shim is to be watched.
    # With an OOM watch (init only): the fd to poll, "v1" or "v2", the memory cgroup dir.
    "watch_process": _fields(
        {"token": str, "id": str, "pid": str, "shim_pid": int, "procdir": str},
        {"oom_fd": int, "oom_kind": (str, _NONE), "cgroup": (str, _NONE)},
    ),
    # Shim -> daemon (ipc PUSH): the container process exited.
    "shim_exit": _fields(
        {"token": str, "id": str, "pid": str, "status": int, "shim_pid": int}
    ),
    # Daemon -> shim (its own control socket), answered by `shim_ack`.
    "shim_control": _fields(
        {"op": str},
        {"data": (bytes, _NONE), "width": (int, _NONE), "height": (int, _NONE),
         "timeout": (float, int, _NONE)},
    ),
    "shim_ack": _fields({"ok": bool}, {"error": (str, _NONE)}),
    # Monitor -> Supervisor: a process exit, exactly once per process.
    "process_exit": _fields({"token": str, "id": str, "pid": str, "status": int}),
    # Monitor -> Supervisor: the container's memory cgroup killed a process.
    "oom": _fields({"id": str, "token": str}),
    # Monitor -> Supervisor: a shim died without recording its process's exit.
    "shim_died": _fields({"token": str, "id": str, "pid": str}),
    # Monitor -> Supervisor: the shim of a process has exited (after its process_exit).
    "shim_gone": _fields({"token": str, "id": str, "pid": str}),
    # Supervisor -> EventLog: record and publish an event, then send `reply` (if any) to the
    # client at `route`: a client is told of a change only once its event is on record (when it
    # cannot be written now, on a full disk, the client gets a `storage_full` error instead).
    "emit": _fields(
        {"event": str, "id": str},
        {"pid": (str, _NONE), "status": (int, _NONE), "token": (str, _NONE),
         "route": (bytes, _NONE), "reply": (dict, _NONE)},
    ),
    # Supervisor -> Inspector: read a process's output or a container's cgroup stats
    # and answer the client.
    "inspect": _fields({"what": str, "route": bytes, "request_id": str, "target": dict}),
    # EventLog -> Supervisor: the exit event of process `token` is on record.
    "recorded": _fields({"token": str}),
    # EventLog -> Supervisor: the state dir's storage is degraded (`reason`: why) or fine again.
    "storage": _fields({"degraded": bool}, {"reason": (str, _NONE)}),
    # Supervisor -> EventLog: answer an events.replay request.
    "replay": _fields({"route": bytes, "request_id": str, "params": dict}),
}


def make(message_type: str, **members: Any) -> dict[str, Any]:
    """Build a message, checking it against its schema (a bug if it fails)."""
    message = {"type": message_type, **members}
    return validate(message)


def validate(message: dict[str, Any]) -> dict[str, Any]:
    """Return the message if it matches its schema, else raise `WireError`."""
    message_type = message.get("type")
    if not isinstance(message_type, str) or message_type not in SCHEMAS:
        raise WireError(f"unknown message type {message_type!r}")
    for name, (kinds, required) in SCHEMAS[message_type].items():
        if name not in message:
            if required:
                raise WireError(f"{message_type}: missing member {name!r}")
            continue
        value = message[name]
        if isinstance(value, bool) and bool not in kinds:
            raise WireError(f"{message_type}: member {name!r} has the wrong type")
        if not isinstance(value, kinds):
            raise WireError(f"{message_type}: member {name!r} has the wrong type")
    return message
