"""A process's stdio and the container's statistics: stdin, close-stdin, resize, reopen-log,
logs, stats.

stdin, close-stdin, resize and reopen-log are control messages to the process's shim,
sent by a worker and acknowledged by the shim. Reading logs and cgroup
statistics is file work, done by the Inspector so the Supervisor never waits on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.supervisor.phases import ProcessPhase
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params
from actors.wire.codec import MAX_STDIN_CHUNK
from actors.wire.messages import Inspect, Request

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor
    from actors.supervisor.phases import Process

LOG_READ_MAX = 256 << 10


def _process(sup: Supervisor, params: Params) -> tuple[str, Process]:
    container_id = params.container_id()
    process_id = params.string("pid", required=False, max_len=64) or "init"
    return container_id, sup.life.find_process(container_id, process_id)


def _control(sup: Supervisor, request: Request, control: dict[str, Any]) -> object:
    container_id, process = _process(sup, Params(request.params))
    sup.submit_job("control", container_id, {"token": process.token, "control": control}, request)
    return DEFERRED


def stdin(sup: Supervisor, request: Request) -> object:
    data = request.params.get("data")
    if not isinstance(data, bytes) or len(data) > MAX_STDIN_CHUNK:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"'data' must be bytes, at most {MAX_STDIN_CHUNK}")
    return _control(sup, request, {"op": "write_stdin", "data": data})


def close_stdin(sup: Supervisor, request: Request) -> object:
    return _control(sup, request, {"op": "close_stdin"})


def resize(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    width = params.integer("width", required=True, low=1, high=65535)
    height = params.integer("height", required=True, low=1, high=65535)
    return _control(sup, request, {"op": "resize", "width": width, "height": height})


def reopen_log(sup: Supervisor, request: Request) -> object:
    """`containers.reopen_log`: the init's shim opens its CRI log's path again (the kubelet
    renamed the file to rotate it). Refused for a container without a CRI log or whose init
    does not run, as the CRI's ReopenContainerLog is."""
    container_id = Params(request.params).container_id()
    container = sup.life.find(container_id)
    if not container.cri_log:
        raise ApiError(ErrorCode.CONFLICT, f"container {container_id} has no CRI log (start it with cri_log)")
    init = container.processes.get("init")
    if init is None or init.phase is not ProcessPhase.RUNNING:
        raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is not running ({container.status})")
    sup.submit_job("control", container_id, {"token": init.token, "control": {"op": "reopen_log"}}, request)
    return DEFERRED


def logs(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    process_id = params.string("pid", required=False, max_len=64) or "init"
    max_bytes = params.integer("max_bytes", low=1, high=LOG_READ_MAX) or LOG_READ_MAX
    cursor = request.params.get("cursor")
    if cursor is not None and not (isinstance(cursor, list) and len(cursor) == 2
                                   and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                           for n in cursor)):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'cursor' must be [generation, offset]")
    container = sup.life.containers.get(container_id)
    process = container.processes.get(process_id) if container and container.listed else None
    finished = sup.life.finished.get((container_id, process_id))
    if process is not None and process.phase is ProcessPhase.RUNNING \
            and (finished is None or finished[0] != process.token):
        token, status = process.token, None
    elif finished is not None:
        token, status = finished
    else:
        raise ApiError(ErrorCode.NOT_FOUND, f"process {process_id} of container {container_id} not found")
    sup.send("inspector", Inspect(what="logs", route=request.route, request_id=request.request_id, target={
        "dir": str(sup.state.output(token)), "cursor": cursor, "max_bytes": max_bytes, "status": status}))
    return DEFERRED


def stats(sup: Supervisor, request: Request) -> object:
    container_id, process = _process(sup, Params({"id": request.params.get("id")}))
    sup.send("inspector", Inspect(what="stats", route=request.route, request_id=request.request_id,
                                  target={"pid": process.system_pid, "id": container_id}))
    return DEFERRED
