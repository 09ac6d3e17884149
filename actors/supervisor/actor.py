"""The Supervisor actor.

Every client request becomes a task here, and every state change happens here,
one message at a time. The Supervisor never blocks: runtime calls go to the
worker pool and come back as `start_done` / `runtime_done` messages, and the
reply to the client is sent when they do (a deferred reply).

The handlers live one task type per module (as containerd v0.2's supervisor
folder): `start` (start, exec), `exit`, `signal`, `lifecycle` (pause, resume,
update), `io` (stdin, resize, logs, stats), `checkpoint`, `query`.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable

import zmq

from actors.base import BusActor
from actors.memory import HeapReturn
from actors.statedir import StateDir
from actors.supervisor import checkpoint, io, lifecycle, query, restore, start
from actors.supervisor import exit as exit_task
from actors.supervisor import signal as signal_task
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.pool import WorkerPool
from actors.supervisor.state import Container, Process
from actors.wire import ApiError, ErrorCode
from actors.wire.api import STATE_CHANGING, error_reply, ok_reply

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

Handler = Callable[["Supervisor", dict[str, Any]], Any]

REQUEST_HANDLERS: dict[str, Handler] = {
    "version": query.version,
    "containers.list": query.list_containers,
    "containers.state": query.state,
    "containers.start": start.request,
    "containers.exec": start.exec_request,
    "containers.signal": signal_task.request,
    "containers.pause": lifecycle.pause,
    "containers.resume": lifecycle.resume,
    "containers.update": lifecycle.update,
    "containers.stdin": io.stdin,
    "containers.close_stdin": io.close_stdin,
    "containers.resize": io.resize,
    "containers.logs": io.logs,
    "containers.stats": io.stats,
    "checkpoints.create": checkpoint.create,
    "checkpoints.list": checkpoint.list_checkpoints,
    "checkpoints.delete": checkpoint.delete,
    "events.replay": query.replay,
}

NEEDS_STORAGE = frozenset({"containers.start", "containers.exec", "containers.pause", "containers.resume",
                           "checkpoints.create"})
"""Requests refused at once while the state dir's storage is full: they would write state or
events that cannot be stored. Signals still go through, so containers can be stopped."""

JOB_DONE: dict[str, Handler] = {
    "pause": lifecycle.transition_done,
    "resume": lifecycle.transition_done,
    "orphan": exit_task.orphan_done,
    "discard": restore.discarded,
}


class Supervisor(BusActor):
    def __init__(
        self, context: zmq.Context, *, state: StateDir, workers: list[str], info: dict[str, Any],
        reported: set[str],
    ) -> None:
        super().__init__(context)
        self.state = state
        self.info = info
        self._reported = reported
        self.containers: dict[str, Container] = {}
        self.tokens: dict[str, tuple[str, str]] = {}
        """process token -> (container id, process id), for every live or starting process."""
        self.pending: dict[str, tuple[bytes, str]] = {}
        """exec token -> (route, request id) of the client waiting for it."""
        self.early_exits: dict[str, int] = {}
        """Exits that arrived before their process finished starting."""
        self.tombstones: dict[str, str] = {}
        """container id -> init token of a removed container whose state is not cleaned up yet."""
        self.cleanups: dict[str, dict[str, Any]] = {}
        """token -> {id, pid, shim_gone, recorded} of exited processes awaiting state cleanup."""
        self.shims_gone: set[str] = set()
        """Tokens of processes whose shim is gone but whose exit is still to be processed."""
        self.parked: dict[str, dict[str, Any]] = {}
        """container id -> start task waiting for that id's tombstone to clear."""
        self.finished: collections.OrderedDict[tuple[str, str], dict[str, Any]] = collections.OrderedDict()
        """(container id, process id) -> {token, status} of recently exited processes."""
        self.storage_trouble: str | None = None
        """Why the state dir's storage is degraded (the EventLog says), or None."""
        self.heap = HeapReturn()
        self.pool = WorkerPool(workers, lambda to, kind, members: self.send(to, kind, **members))

    def on_start(self) -> None:
        super().on_start()
        counts = restore.restore(self, self._reported)
        self._reported.clear()
        logger.info("restored %d running, %d exited, %d orphaned; discarded %d damaged",
                    counts["running"], counts["exited"], counts["orphaned"], counts["discarded"])

    def on_stop(self) -> None:
        for container in self.containers.values():
            for process in container.processes.values():
                process.close()
        super().on_stop()

    def reply(self, route: bytes | None, request_id: str | None, result: Any = None,
              error: ApiError | None = None) -> None:
        if route is None:
            return
        body = error_reply(request_id, error) if error is not None else ok_reply(request_id, result)
        self.send("bus", "reply", route=route, body=body)

    def emit(self, event: str, container_id: str, pid: str | None = None, status: int | None = None,
             token: str | None = None, answer: tuple[bytes | None, str | None, Any] | None = None) -> None:
        """Record an event; an exit carries its process token, so a restart never reports it twice.

        `answer` (route, request id, result) is the client's reply, sent by the EventLog once
        the event is on record, so no client hears of a change whose event a crash could lose.
        """
        route, body = None, None
        if answer is not None and answer[0] is not None:
            route, body = answer[0], ok_reply(answer[1], answer[2])
        self.send("eventlog", "emit", event=event, id=container_id, pid=pid, status=status, token=token,
                  route=route, reply=body)

    def find(self, container_id: str) -> Container:
        container = self.containers.get(container_id)
        if container is None or not container.listed:
            raise ApiError(ErrorCode.NOT_FOUND, f"container {container_id} not found")
        return container

    def find_process(self, container_id: str, process_id: str) -> Process:
        process = self.find(container_id).processes.get(process_id)
        if process is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"process {process_id} of container {container_id} not found")
        return process

    def submit_job(self, job: str, container_id: str, args: list[Any], request: dict[str, Any]) -> None:
        """Run a runtime job on a free worker; its `runtime_done` answers `request`."""
        self.pool.submit("runtime_task", {"job": job, "id": container_id, "args": args,
                                          "route": request["route"], "request_id": request["id"]})

    def job_reply(self, message: dict[str, Any]) -> None:
        error = message.get("error")
        if message["ok"] or error is None:
            result = message.get("result")
            self.reply(message.get("route"), message.get("request_id"), {} if result is None else result)
        else:
            self.reply(message.get("route"), message.get("request_id"),
                       error=ApiError(str(error.get("code")), str(error.get("message"))))

    def on_request(self, request: dict[str, Any]) -> None:
        route, request_id = request["route"], request["id"]
        if request["method"] in STATE_CHANGING:  # who asked, whether or not it is granted
            peer = " ".join(f"{name}={value}" for name, value in request.get("peer", {}).items())
            logger.info("%s %.80r by %s", request["method"], request["params"].get("id"), peer)
        handler = REQUEST_HANDLERS[request["method"]]
        try:
            if self.storage_trouble is not None and request["method"] in NEEDS_STORAGE:
                raise ApiError(ErrorCode.STORAGE_FULL, f"{request['method']} refused: {self.storage_trouble}")
            result = handler(self, request)
        except ApiError as exc:
            self.reply(route, request_id, error=exc)
        except Exception as exc:
            logger.exception("request %s failed", request["method"])
            self.reply(route, request_id, error=ApiError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}"))
        else:
            if result is not DEFERRED:
                self.reply(route, request_id, result)

    def on_start_done(self, message: dict[str, Any]) -> None:
        self.pool.done(message["worker"])
        start.done(self, message)

    def on_runtime_done(self, message: dict[str, Any]) -> None:
        self.pool.done(message["worker"])
        JOB_DONE.get(message["job"], Supervisor.job_reply)(self, message)

    def on_process_exit(self, message: dict[str, Any]) -> None:
        exit_task.process_exit(self, message)

    def on_oom(self, message: dict[str, Any]) -> None:
        container = self.containers.get(message["id"])
        if container is not None and container.init_token == message["token"]:
            self.emit("oom", container.id)

    def orphaned(self, container: Container, process: Any) -> None:
        """The shim of `process` is dead: have a worker kill what is left and find its status."""
        self.pool.submit("runtime_task", {
            "job": "orphan", "id": container.id, "route": None, "request_id": None,
            "args": [process.id, process.system_pid, process.system_start, container.status == "paused",
                     process.token],
        })

    def on_shim_died(self, message: dict[str, Any]) -> None:
        owner = self.tokens.get(message["token"])
        container = self.containers.get(message["id"])
        if owner is None or container is None or owner[1] not in container.processes:
            return
        logger.warning("the shim of %s/%s died", container.id, owner[1])
        self.orphaned(container, container.processes[owner[1]])

    def on_shim_gone(self, message: dict[str, Any]) -> None:
        freed = exit_task.shim_gone(self, message)
        if freed is not None:
            start.unpark(self, freed)

    def on_storage(self, message: dict[str, Any]) -> None:
        """The EventLog's word on the state dir's storage: shown by `version`, checked by requests."""
        self.storage_trouble = (message.get("reason") or "storage full") if message["degraded"] else None

    def on_recorded(self, message: dict[str, Any]) -> None:
        freed = exit_task.recorded(self, message)
        if freed is not None:
            start.unpark(self, freed)
