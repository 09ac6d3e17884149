"""containers.start and containers.exec: checked here, run by a worker, finished on `start_done`.

`start-container` is emitted here, on the Supervisor, before any exit of the
container is processed: an exit that races ahead of `start_done` waits in
`early_exits` until the process is registered. Exec names are reserved while
their start is under way, so a duplicate is refused at once.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.supervisor import exit as exit_task
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.state import Container, Process
from actors.wire import ApiError, ErrorCode
from actors.wire.api import PROCESS_ID, Params

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor

logger = logging.getLogger(__name__)


def request(sup: Supervisor, request: dict[str, Any]) -> object:
    params = Params(request["params"])
    container_id = params.container_id()
    bundle = params.string("bundle")
    labels = params.labels()
    checkpoint = params.string("checkpoint", required=False, max_len=64)
    stdin = params.flag("stdin")
    init = params.flag("init")
    assert bundle is not None
    if checkpoint is not None and not PROCESS_ID.match(checkpoint):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid checkpoint name {checkpoint!r}")
    if not os.path.isabs(bundle):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle path {bundle!r} must be absolute")
    if container_id in sup.containers:
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} already exists")
    bundle_path = Path(bundle)
    if not bundle_path.is_dir():
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle {bundle} does not exist or is not a directory")
    if not (bundle_path / "config.json").is_file():
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle {bundle} has no config.json")
    token = uuid.uuid4().hex
    sup.containers[container_id] = Container(
        id=container_id, bundle=bundle, labels=labels, init_token=token, init=init,
        start_route=request["route"], start_request_id=request["id"],
    )
    sup.heap.grew(len(sup.containers))
    sup.tokens[token] = (container_id, "init")
    task = {"token": token, "id": container_id, "bundle": bundle, "labels": labels,
            "stdin": stdin, "checkpoint": checkpoint, "init": init}
    if container_id in sup.tombstones:
        sup.parked[container_id] = task
    else:
        sup.pool.submit("start_task", task)
    return DEFERRED


def unpark(sup: Supervisor, container_id: str) -> None:
    """The id's previous container is fully gone: run the start that waited for it."""
    task = sup.parked.pop(container_id, None)
    if task is not None:
        sup.pool.submit("start_task", task)


def _user(value: str | None) -> list[int] | None:
    if value is None:
        return None
    uid, _, gid = value.partition(":")
    try:
        ids = [int(uid), int(gid or uid)]
    except ValueError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"user {value!r} must be UID or UID:GID") from None
    if not all(0 <= n < 2**32 for n in ids):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"user {value!r} is out of range")
    return ids


def exec_request(sup: Supervisor, request: dict[str, Any]) -> object:
    params = Params(request["params"])
    container_id = params.container_id()
    args = request["params"].get("args")
    if not isinstance(args, list) or not args or len(args) > 4096 or not all(isinstance(a, str) for a in args):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'args' must be a non-empty list of strings")
    env = request["params"].get("env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) and "=" in e and e[0] != "=" for e in env):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'env' must be a list of KEY=VALUE strings")
    cwd = params.string("cwd", required=False)
    if cwd is not None and not cwd.startswith("/"):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'cwd' must be an absolute path in the container")
    spec = {
        "args": args,
        "env": env,
        "cwd": cwd,
        "user": _user(params.string("user", required=False, max_len=32)),
        "tty": params.flag("tty"),
    }
    container = sup.find(container_id)
    if container.status != "running":
        raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {container.status}")
    process_id = params.string("pid", required=False, max_len=64)
    if process_id is None:
        container.exec_count += 1
        process_id = f"exec-{container.exec_count}"
        while process_id in container.processes or process_id in container.starting:
            container.exec_count += 1
            process_id = f"exec-{container.exec_count}"
    elif not PROCESS_ID.match(process_id) or process_id == "init":
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid process name {process_id[:80]!r}")
    if process_id in container.processes or process_id in container.starting:
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"process {process_id} already exists in {container_id}")
    token = uuid.uuid4().hex
    container.starting.add(process_id)
    sup.tokens[token] = (container_id, process_id)
    sup.pending[token] = (request["route"], request["id"])
    sup.pool.submit("exec_task", {"token": token, "id": container_id, "pid": process_id,
                                  "spec": spec, "stdin": params.flag("stdin")})
    return DEFERRED


def done(sup: Supervisor, message: dict[str, Any]) -> None:
    token, container_id = message["token"], message["id"]
    owner = sup.tokens.get(token)
    container = sup.containers.get(container_id)
    if owner is None or container is None:
        _discard(sup, token, message)
        return
    process_id = owner[1]
    if process_id == "init":
        route, request_id = container.start_route, container.start_request_id
        container.start_route = container.start_request_id = None
    else:
        container.starting.discard(process_id)
        route, request_id = sup.pending.pop(token, (None, None))
    if not message["ok"]:
        sup.tokens.pop(token, None)
        sup.early_exits.pop(token, None)
        if process_id == "init":
            del sup.containers[container_id]
        else:
            exit_task.maybe_remove(sup, container)
        error = message.get("error") or {}
        logger.warning("start of %s/%s failed: %s", container_id, process_id, error.get("message"))
        sup.reply(route, request_id, error=ApiError(
            str(error.get("code", ErrorCode.INTERNAL)), str(error.get("message", "start failed"))))
        return
    info = message["process"]
    assert info is not None
    container.processes[process_id] = Process(
        id=process_id, token=token, system_pid=info["system_pid"], shim_pid=info["shim_pid"],
        args=info["args"], pidfd=info["pidfd"], tty=bool(info.get("tty")),
        system_start=info.get("system_start"),
    )
    if process_id == "init":
        container.status = "running"
        logger.info("container %s started (pid %d)", container_id, info["system_pid"])
        sup.emit("start-container", container_id, answer=(route, request_id, container.to_json()))
    else:
        logger.info("process %s/%s started (pid %d)", container_id, process_id, info["system_pid"])
        sup.emit("start-process", container_id, pid=process_id,
                 answer=(route, request_id, container.processes[process_id].to_json()))
    status = sup.early_exits.pop(token, None)
    if status is not None:
        exit_task.exited(sup, container, process_id, status)


def _discard(sup: Supervisor, token: str, message: dict[str, Any]) -> None:
    """A start finished for a container that is already gone (its init exited meanwhile)."""
    sup.tokens.pop(token, None)
    sup.early_exits.pop(token, None)
    route, request_id = sup.pending.pop(token, (None, None))
    if message["ok"] and message.get("process") and message["process"]["pidfd"] >= 0:
        os.close(message["process"]["pidfd"])
    sup.reply(route, request_id, error=ApiError(ErrorCode.CONFLICT, f"container {message['id']} has exited"))
