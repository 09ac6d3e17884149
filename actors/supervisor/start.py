"""containers.start: checked here, run by a worker, finished on `start_done`.

`start-container` is emitted here, on the Supervisor, before any exit of the
container is processed: an exit that races ahead of `start_done` waits in
`early_exits` until the container is running.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.supervisor import exit as exit_task
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.state import Container, Process
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: dict[str, Any]) -> object:
    params = Params(request["params"])
    container_id = params.container_id()
    bundle = params.string("bundle")
    labels = params.labels()
    assert container_id is not None and bundle is not None
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
        id=container_id,
        bundle=bundle,
        labels=labels,
        init_token=token,
        start_route=request["route"],
        start_request_id=request["id"],
    )
    sup.tokens[token] = (container_id, "init")
    task = {"token": token, "id": container_id, "bundle": bundle, "labels": labels}
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


def done(sup: Supervisor, message: dict[str, Any]) -> None:
    token, container_id = message["token"], message["id"]
    container = sup.containers.get(container_id)
    if container is None or container.init_token != token:
        return
    route, request_id = container.start_route, container.start_request_id
    container.start_route = container.start_request_id = None
    if not message["ok"]:
        del sup.containers[container_id]
        sup.tokens.pop(token, None)
        sup.early_exits.pop(token, None)
        error = message.get("error") or {}
        sup.reply(route, request_id, error=ApiError(
            str(error.get("code", ErrorCode.INTERNAL)), str(error.get("message", "start failed"))
        ))
        return
    info = message["process"]
    assert info is not None
    container.processes["init"] = Process(
        id="init",
        token=token,
        system_pid=info["system_pid"],
        shim_pid=info["shim_pid"],
        args=info["args"],
        pidfd=info["pidfd"],
    )
    container.status = "running"
    sup.emit("start-container", container_id)
    sup.reply(route, request_id, container.to_json())
    status = sup.early_exits.pop(token, None)
    if status is not None:
        exit_task.exited(sup, container, "init", status)
