"""Process exits and shim departures.

An exec's `exit` is emitted at once. The init's `exit` waits until every exec
of the container has reported (and no exec is still starting), so subscribers
always see exec exits first. After the init's exit the container is removed
from the table; its id stays reserved (a tombstone) until its state is cleaned
up, and a start for the same id waits for that rather than racing it.

A process's state dir is removed only when both its shim is gone (it has
deleted the runc container) and the EventLog has recorded its `exit`: a crash
at any moment leaves either the exit on record or the state that a restart
reports it from, never neither.

The output of an exited process (`output/<token>`) stays readable for a while:
the last FINISHED_KEPT exited processes keep theirs.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING, Any

from actors.rootfs import remove_container_dir
from actors.supervisor.state import Container

if TYPE_CHECKING:
    from actors.supervisor.actor import Supervisor

logger = logging.getLogger(__name__)

FINISHED_KEPT = 256


def process_exit(sup: Supervisor, message: dict[str, Any]) -> None:
    token, status = message["token"], message["status"]
    owner = sup.tokens.get(token)
    if owner is None:
        return  # a failed start, or a process already reported
    container_id, process_id = owner
    container = sup.containers.get(container_id)
    if container is None:
        sup.tokens.pop(token, None)
        return
    if process_id not in container.processes:
        sup.early_exits[token] = status  # start_done not processed yet
        return
    exited(sup, container, process_id, status)


def exited(sup: Supervisor, container: Container, process_id: str, status: int) -> None:
    process = container.processes[process_id]
    _remember(sup, container.id, process_id, process.token, status)
    if process_id != "init":
        del container.processes[process_id]
        sup.tokens.pop(process.token, None)
        process.close()
        _await_cleanup(sup, container.id, process_id, process.token)
        sup.emit("exit", container.id, pid=process_id, status=status, token=process.token)
        logger.info("process %s/%s exited with %d", container.id, process_id, status)
        maybe_remove(sup, container)
        return
    container.init_status = status
    container.status = "stopping"
    maybe_remove(sup, container)


def orphan_done(sup: Supervisor, message: dict[str, Any]) -> None:
    """A dead shim's process has been dealt with: report its exit like any other."""
    token = message["args"][4]
    status = message.get("result")
    owner = sup.tokens.get(token)
    container = sup.containers.get(message["id"])
    if owner is None or container is None or owner[1] not in container.processes:
        return
    exited(sup, container, owner[1], status if isinstance(status, int) else 255)


def maybe_remove(sup: Supervisor, container: Container) -> None:
    """Remove a container whose init has exited, once no other process is left."""
    if container.status != "stopping" or list(container.processes) != ["init"] or container.starting:
        return
    init = container.processes.pop("init")
    init.close()
    sup.tokens.pop(init.token, None)
    del sup.containers[container.id]
    sup.tombstones[container.id] = init.token
    _await_cleanup(sup, container.id, "init", init.token)
    sup.emit("exit", container.id, pid="init", status=container.init_status, token=init.token)
    logger.info("container %s exited with %s", container.id, container.init_status)
    sup.heap.shrank(len(sup.containers))  # after the event is on its way: a collection takes a while


def _remember(sup: Supervisor, container_id: str, process_id: str, token: str, status: int) -> None:
    replaced = sup.finished.pop((container_id, process_id), None)
    if replaced is not None:
        shutil.rmtree(sup.state.output(replaced["token"]), ignore_errors=True)
    sup.finished[(container_id, process_id)] = {"token": token, "status": status}
    while len(sup.finished) > FINISHED_KEPT:
        _, old = sup.finished.popitem(last=False)
        shutil.rmtree(sup.state.output(old["token"]), ignore_errors=True)


def _await_cleanup(sup: Supervisor, container_id: str, process_id: str, token: str) -> None:
    sup.cleanups[token] = {"id": container_id, "pid": process_id,
                           "shim_gone": token in sup.shims_gone, "recorded": False}
    sup.shims_gone.discard(token)


def shim_gone(sup: Supervisor, message: dict[str, Any]) -> str | None:
    """A shim has exited; the id of a container that is now free again, if any."""
    token = message["token"]
    if token in sup.cleanups:
        sup.cleanups[token]["shim_gone"] = True
        return _finish(sup, token)
    if token in sup.tokens:
        sup.shims_gone.add(token)  # its exit is still to be processed (e.g. a dead shim's)
    return None


def recorded(sup: Supervisor, message: dict[str, Any]) -> str | None:
    """The EventLog has recorded the exit of `token`; the id of a container now free, if any."""
    token = message["token"]
    if token in sup.cleanups:
        sup.cleanups[token]["recorded"] = True
        return _finish(sup, token)
    return None


def _finish(sup: Supervisor, token: str) -> str | None:
    cleanup = sup.cleanups[token]
    if not (cleanup["shim_gone"] and cleanup["recorded"]):
        return None
    del sup.cleanups[token]
    container_id = cleanup["id"]
    if cleanup["pid"] != "init":
        shutil.rmtree(sup.state.process(container_id, cleanup["pid"]), ignore_errors=True)
        return None
    remove_container_dir(sup.state.container(container_id))
    if sup.tombstones.get(container_id) == token:
        del sup.tombstones[container_id]
        return container_id
    return None
