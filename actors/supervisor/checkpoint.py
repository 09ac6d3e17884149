"""checkpoints.create, checkpoints.list, checkpoints.delete: passed to runc (and CRIU) by a worker.

Checkpoints live in `<bundle>/checkpoints/<name>`, so they outlive the container
and `containers.start` with `checkpoint` can restore from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.supervisor.deferred import DEFERRED
from actors.wire import ApiError, ErrorCode
from actors.wire.api import PROCESS_ID, Params
from actors.wire.messages import Request
from actors.worker.checkpoints import CHECKPOINT_FLAGS

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def _name(params: Params) -> str:
    name = params.string("name", max_len=64)
    assert name is not None
    if not PROCESS_ID.match(name):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid checkpoint name {name[:80]!r}")
    return name


def create(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    name = _name(params)
    container = sup.life.find(container_id)
    job = {"bundle": container.bundle, "name": name, "exit": params.flag("exit"),
           "options": {key: params.flag(key) for key in CHECKPOINT_FLAGS}}
    sup.submit_job("checkpoint", container_id, job, request)
    return DEFERRED


def list_checkpoints(sup: Supervisor, request: Request) -> object:
    container_id = Params(request.params).container_id()
    sup.submit_job("list_checkpoints", container_id, {"bundle": sup.life.find(container_id).bundle}, request)
    return DEFERRED


def delete(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    name = _name(params)
    sup.submit_job("delete_checkpoint", container_id, {"bundle": sup.life.find(container_id).bundle, "name": name},
                   request)
    return DEFERRED
