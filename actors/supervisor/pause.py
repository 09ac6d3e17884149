"""containers.pause, containers.resume, containers.update: runc calls on a worker.

An update gives numbers, or for `cpuset_cpus` and `cpuset_mems` a list such as `0-2,4`.

A container has at most one pause or resume under way (its phases `pausing` and
`resuming`, in `lifecycle.py`); another is a conflict, as is pausing a paused
container or resuming a running one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from actors.supervisor.deferred import DEFERRED
from actors.wire import ApiError, ErrorCode
from actors.wire.api import Params
from actors.wire.messages import Request, RuntimeDone
from actors.worker.jobs import UPDATE_FLAGS

CPU_SETS = frozenset({"cpuset_cpus", "cpuset_mems"})
"""The limits given as a list of CPUs or memory nodes (cpuset's format), not a number."""
CPU_LIST = re.compile(r"[0-9]{1,4}(-[0-9]{1,4})?(,[0-9]{1,4}(-[0-9]{1,4})?)*\Z", re.ASCII)

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
    limits: dict[str, int | str] = {}
    for key in UPDATE_FLAGS:
        value: int | str | None
        if key in CPU_SETS:
            value = listed = params.string(key, required=False, max_len=256)
            if listed is not None and not CPU_LIST.match(listed):
                raise ApiError(ErrorCode.INVALID_PARAMS, f"{key} {listed[:80]!r} is no list of numbers and ranges "
                                                         "(e.g. 0-2,4)")
        else:
            value = params.integer(key, low=-1 if key in ("cpu_quota", "memory_swap") else 0)
        if value is not None:
            limits[key] = value
    if not limits:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"give at least one of {', '.join(UPDATE_FLAGS)}")
    sup.life.find(container_id)
    sup.submit_job("update", container_id, {"limits": limits}, request)
    return DEFERRED
