"""containers.start, containers.prepare and containers.exec: the requests' parameters, checked
here. A start from an image has its bundle made by the ImageService first (`ImageBundleTask`,
`bundle_made`); `containers.prepare` only makes it (the CRI's CreateContainer writes its own
config.json into it, then starts it from that bundle), and the bundle is kept, across daemon
restarts, until the container is started from it or `containers.remove` releases it.

What a start does to the container and its process (park it, reserve an exec's name,
submit the start task, finish on `start_done`) is the lifecycle's (`lifecycle.py`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from actors.images.bundles import PREPARED_MARK
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.restart import RestartPolicy
from actors.wire import ApiError, ErrorCode
from actors.wire.api import PROCESS_ID, Params
from actors.wire.crilog import PATH_MAX, cri_log_problem
from actors.wire.messages import ExecTask, ImageBundleDone, ImageBundleTask, Request, StartTask
from actors.wire.outputlog import LIMIT_HIGH, LIMIT_LOW

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor


def request(sup: Supervisor, request: Request) -> object:
    """A start from a bundle (`bundle`, an absolute path), or from an image (`image`, a reference
    or an image id, and `args`): its bundle is made by the ImageService first (`bundle_made`)."""
    params = Params(request.params)
    container_id = params.container_id()
    image = params.string("image", required=False, max_len=1024)
    if image is None:
        if container_id in sup.preparing:
            raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} already exists (it is being started "
                                                     "from an image)")
        return _start(sup, request, params.string("bundle") or "")
    if request.params.get("bundle") is not None or request.params.get("checkpoint") is not None:
        raise ApiError(ErrorCode.INVALID_PARAMS, "give 'image' or 'bundle', not both (and no checkpoint with "
                                                 "an image)")
    args = request.params.get("args")
    if args is not None and (not isinstance(args, list) or len(args) > 4096
                             or not all(isinstance(a, str) for a in args)):
        raise ApiError(ErrorCode.INVALID_PARAMS, "'args' must be a list of strings")
    _check(params)
    sup.life.check_free(container_id)
    if container_id in sup.preparing or container_id in sup.life.removed:
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} already exists (it is being "
                                                 "started or removed)")
    sup.preparing.add(container_id)
    sup.send("images", ImageBundleTask(container_id=container_id, image=image, args=args,
                                       terminal=params.flag("tty"), route=request.route,
                                       request_id=request.request_id, params=request.params))
    return DEFERRED


def prepare_request(sup: Supervisor, request: Request) -> object:
    """`containers.prepare {id, image}`: make the bundle of a container of `image` without
    starting it; answered `{"bundle": its dir}` (`bundle_made`)."""
    params = Params(request.params)
    container_id = params.container_id()
    image = params.string("image", max_len=1024) or ""
    sup.life.check_free(container_id)
    if container_id in sup.preparing or container_id in sup.life.removed or container_id in sup.prepared:
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} already exists (it is being "
                                                 "started or removed, or its bundle is prepared)")
    sup.preparing.add(container_id)
    sup.send("images", ImageBundleTask(container_id=container_id, image=image, route=request.route,
                                       request_id=request.request_id, params={"prepare": True}))
    return DEFERRED


def bundle_made(sup: Supervisor, done: ImageBundleDone) -> None:
    """The ImageService made (or could not make) the bundle of an image start: start it as any
    bundle (or, for `containers.prepare`, mark it kept and answer its path), or answer why not;
    a start refused now takes its bundle away again."""
    sup.preparing.discard(done.container_id)
    client = (done.route, done.request_id)
    if done.error is not None or done.bundle is None:
        sup.reply(client, error=ApiError.from_wire(done.error or {}, "the image's bundle cannot be made"))
        return
    sup.image_containers.add(done.container_id)
    if done.params.get("prepare"):
        sup.prepared.add(done.container_id)
        try:
            (Path(done.bundle) / PREPARED_MARK).touch()
        except OSError as exc:
            sup.prepared.discard(done.container_id)
            sup.release_if_gone(done.container_id)
            sup.reply(client, error=ApiError(ErrorCode.INTERNAL, f"cannot mark the bundle of {done.container_id} "
                                                                 f"kept: {exc.strerror}"))
            return
        sup.reply(client, {"bundle": done.bundle})
        return
    request = Request(route=done.route, request_id=done.request_id, method="containers.start",
                      params=done.params)
    try:
        _start(sup, request, done.bundle)
    except ApiError as exc:
        sup.reply(client, error=exc)
        sup.release_if_gone(done.container_id)


def _cri_log(params: Params) -> str:
    """The `cri_log` param (actors/wire/crilog.py): a path checked as a path; empty when not given."""
    path = params.string("cri_log", required=False, max_len=PATH_MAX)
    if path is None:
        return ""
    problem = cri_log_problem(path)
    if problem is not None:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cri_log {path[:200]!r} {problem}")
    return path


def _check(params: Params) -> tuple[dict[str, str], str | None, bool, bool, RestartPolicy, str]:
    """A start's options, checked (an image start's before its bundle is made)."""
    labels = params.labels()
    checkpoint = params.string("checkpoint", required=False, max_len=64)
    stdin = params.flag("stdin")
    init = params.flag("init")
    try:
        restart = RestartPolicy.parse(params.string("restart", required=False, max_len=32) or "no")
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, str(exc)) from None
    if checkpoint is not None and not PROCESS_ID.match(checkpoint):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"invalid checkpoint name {checkpoint!r}")
    return labels, checkpoint, stdin, init, restart, _cri_log(params)


def _start(sup: Supervisor, request: Request, bundle: str) -> object:
    params = Params(request.params)
    container_id = params.container_id()
    labels, checkpoint, stdin, init, restart, cri_log = _check(params)
    if not os.path.isabs(bundle):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"bundle path {bundle!r} must be absolute")
    sup.life.check_free(container_id)
    prepared = container_id in sup.prepared
    if prepared and os.path.realpath(bundle) != os.path.realpath(sup.root.image_bundles / container_id):
        raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} has a prepared bundle: start it from "
                                                 "that bundle, or remove it first")
    # the bundle is the requester's: only the worker reads it, once (actors/worker/spec.py)
    task = StartTask(token="", container_id=container_id, bundle=bundle, labels=labels, stdin=stdin,
                     checkpoint=checkpoint, init=init, cri_log=cri_log)
    effects = sup.life.start(container_id, bundle, labels, init, (request.route, request.request_id), task, restart)
    if prepared:  # its prepared bundle is now the container's: it goes with it
        sup.prepared.discard(container_id)
        (Path(bundle) / PREPARED_MARK).unlink(missing_ok=True)
    sup.carry_out(effects)
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
    log_limit = params.integer("log_limit", low=LIMIT_LOW, high=LIMIT_HIGH) or 0
    task = ExecTask(token="", container_id=container_id, process="", spec=spec, stdin=params.flag("stdin"),
                    log_limit=log_limit)
    sup.carry_out(sup.life.exec(container_id, name, (request.route, request.request_id), task))
    return DEFERRED
