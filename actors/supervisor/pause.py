"""containers.pause, containers.resume, containers.update: runc calls on a worker.

A container has at most one pause or resume under way (its phases `pausing` and
`resuming`, in `lifecycle.py`); another is a conflict, as is pausing a paused
container or resuming a running one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params
from actors.wire.messages import Request, RuntimeDone
from actors.worker.jobs import UPDATE_FLAGS

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor
    from actors.supervisor.phases import Client


def _begin(sup: Supervisor, request: Request, job: str) -> object:
    container_id = Params(request.params).container_id()
    sup.life.pause(container_id, job)
    sup.submit_job(job, container_id, {}, request)
    return DEFERRED


def pause(sup: Supervisor, request: Request) -> object:
    return _begin(sup, request, "pause")


def resume(sup: Supervisor, request: Request) -> object:
    return _begin(sup, request, "resume")


def done(sup: Supervisor, message: RuntimeDone) -> None:
    """A pause or resume job is done: the event answers the client, or the job's own reply does."""
    answer: tuple[Client, Any] = ((message.route, message.request_id), {})
    effects = sup.life.paused(message.container_id, message.job, message.ok, answer)
    if effects is None:
        sup.job_reply(message)
    else:
        sup.carry_out(effects)


def update(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    limits = {}
    for key in UPDATE_FLAGS:
        low = -1 if key == "cpu_quota" else 0
        value = params.integer(key, low=low)
        if value is not None:
            limits[key] = value
    if not limits:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"give at least one of {', '.join(UPDATE_FLAGS)}")
    sup.life.find(container_id)
    sup.submit_job("update", container_id, {"limits": limits}, request)
    return DEFERRED
