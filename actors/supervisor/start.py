"""containers.start and containers.exec: the requests' parameters, checked here.

What a start does to the container and its process (park it, reserve an exec's name,
submit the start task, finish on `start_done`) is the lifecycle's (`lifecycle.py`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from actors.supervisor.deferred import DEFERRED
from actors.supervisor.restart import RestartPolicy
from actors.wire import ApiError, ErrorCode
from actors.wire.api import PROCESS_ID, Params
from actors.wire.messages import ExecTask, Request, StartTask

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    bundle = params.string("bundle")
    labels = params.labels()
    checkpoint = params.string("checkpoint", required=False, max_len=64)
    stdin = params.flag("stdin")
    init = params.flag("init")
    try:
        restart = RestartPolicy.parse(params.string("restart", required=False, max_len=32) or "no")
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, str(exc)) from None
    assert bundle is not None
    if checkpoint is not None and not PROCESS_ID.match(checkpoint):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid checkpoint name {checkpoint!r}")
    if not os.path.isabs(bundle):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle path {bundle!r} must be absolute")
    sup.life.check_free(container_id)
    # the bundle is the requester's: only the worker reads it, once (actors/worker/spec.py)
    task = StartTask(token="", container_id=container_id, bundle=bundle, labels=labels, stdin=stdin,
                     checkpoint=checkpoint, init=init)
    sup.carry_out(sup.life.start(container_id, bundle, labels, init, (request.route, request.request_id), task,
                                 restart))
    sup.heap.grew(len(sup.life.containers))
    return DEFERRED


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


def exec_request(sup: Supervisor, request: Request) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    args = request.params.get("args")
    if not isinstance(args, list) or not args or len(args) > 4096 or not all(isinstance(a, str) for a in args):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'args' must be a non-empty list of strings")
    env = request.params.get("env") or []
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
    name = params.string("pid", required=False, max_len=64)
    if name is not None and (not PROCESS_ID.match(name) or name == "init"):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid process name {name[:80]!r}")
    task = ExecTask(token="", container_id=container_id, process="", spec=spec, stdin=params.flag("stdin"))
    sup.carry_out(sup.life.exec(container_id, name, (request.route, request.request_id), task))
    return DEFERRED
