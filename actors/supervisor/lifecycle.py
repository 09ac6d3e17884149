"""containers.pause, containers.resume, containers.update: runc calls on a worker, state here.

A container has at most one pause or resume under way; another is a conflict,
as is pausing a paused container or resuming a running one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params
from actors.worker.jobs import UPDATE_FLAGS

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor

_FROM = {"pause": "running", "resume": "paused"}
_TO = {"pause": "paused", "resume": "running"}


def _transition(sup: Supervisor, request: dict[str, Any], job: str) -> object:
    container_id = Params(request["params"]).container_id()
    container = sup.find(container_id)
    if container.transition is not None:
        raise ApiError(ErrorCode.CONFLICT, f"a {container.transition} of {container_id} is under way")
    if container.status != _FROM[job]:
        raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {container.status}")
    container.transition = job
    sup.submit_job(job, container_id, [], request)
    return DEFERRED


def pause(sup: Supervisor, request: dict[str, Any]) -> object:
    return _transition(sup, request, "pause")


def resume(sup: Supervisor, request: dict[str, Any]) -> object:
    return _transition(sup, request, "resume")


def transition_done(sup: Supervisor, message: dict[str, Any]) -> None:
    job = message["job"]
    container = sup.containers.get(message["id"])
    if container is not None and container.transition == job:
        container.transition = None
        if message["ok"] and container.status == _FROM[job]:
            container.status = _TO[job]
            sup.emit(job, container.id, answer=(message.get("route"), message.get("request_id"), {}))
            return
    sup.job_reply(message)


def update(sup: Supervisor, request: dict[str, Any]) -> object:
    params = Params(request["params"])
    container_id = params.container_id()
    limits = {}
    for key in UPDATE_FLAGS:
        low = -1 if key == "cpu_quota" else 0
        value = params.integer(key, low=low)
        if value is not None:
            limits[key] = value
    if not limits:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"give at least one of {', '.join(UPDATE_FLAGS)}")
    sup.find(container_id)
    sup.submit_job("update", container_id, [limits], request)
    return DEFERRED
