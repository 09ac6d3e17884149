"""The Supervisor actor.

Every client request becomes a task here, and every state change happens here,
one message at a time. The Supervisor never blocks: runtime calls go to the
worker pool and come back as `start_done` / `runtime_done` messages, and the
reply to the client is sent when they do (a deferred reply).

The life of containers and processes is `lifecycle.Lifecycle`: its transitions
change the records and return effects, which `carry_out` performs here. The request
handlers live one task type per module (as containerd v0.2's supervisor folder):
`start` (start, exec), `signal`, `pause` (pause, resume, update), `io` (stdin,
resize, logs, stats), `checkpoint`, `query`, `remove`; `restore` loads a previous run's
state; `restart` holds the restart policies' rules (the lifecycle applies them).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import zmq

from actors.base import Handlers, SocketActor
from actors.daemonlog import log_context, log_fields
from actors.images.bundles import PREPARED_MARK
from actors.memory import HeapReturn
from actors.metrics import Metrics
from actors.rootdir import RootDir
from actors.rootfs import remove_container_dir
from actors.service.health import Health
from actors.statedir import StateDir
from actors.supervisor import checkpoint, io, pause, query, remove, restore, start
from actors.supervisor import signal as signal_task
from actors.supervisor.deferred import DEFERRED
from actors.supervisor.effects import (
    ArmAlarm,
    ClosePidfd,
    Effect,
    Emit,
    ForgetDefinition,
    LogLine,
    RemoveContainerDir,
    RemoveOutput,
    RemoveProcessDir,
    Reply,
    SaveDefinition,
    Submit,
)
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.lifecycle import logger as lifecycle_log
from actors.supervisor.phases import Client
from actors.supervisor.pool import WorkerPool
from actors.supervisor.probe import SupervisorProbe
from actors.supervisor.restart import Alarm, Backoff
from actors.wire import ApiError, ErrorCode, trace
from actors.wire import messages as wire
from actors.wire.api import CONTAINER_ID, STATE_CHANGING, error_reply, ok_reply
from actors.wire.events import UNKNOWN_STATUS, EventType
from hostos.atomicfile import describe_os_error

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

Handler = Callable[["Supervisor", wire.Request], Any]

REQUEST_HANDLERS: dict[str, Handler] = {
    "version": query.version,
    "health": query.health,
    "containers.list": query.list_containers,
    "containers.state": query.state,
    "containers.start": start.request,
    "containers.prepare": start.prepare_request,
    "containers.exec": start.exec_request,
    "containers.signal": signal_task.request,
    "containers.remove": remove.request,
    "containers.pause": pause.pause,
    "containers.resume": pause.resume,
    "containers.update": pause.update,
    "containers.stdin": io.stdin,
    "containers.close_stdin": io.close_stdin,
    "containers.resize": io.resize,
    "containers.reopen_log": io.reopen_log,
    "containers.logs": io.logs,
    "containers.stats": io.stats,
    "checkpoints.create": checkpoint.create,
    "checkpoints.list": checkpoint.list_checkpoints,
    "checkpoints.delete": checkpoint.delete,
    "events.replay": query.replay,
}

NEEDS_STORAGE = frozenset({"containers.start", "containers.prepare", "containers.exec", "containers.pause",
                           "containers.resume", "checkpoints.create"})
"""Requests refused at once while the state dir's storage is full: they would write state or
events that cannot be stored. Signals still go through, so containers can be stopped."""

class Supervisor(SocketActor):
    inbox_name = "supervisor"

    def __init__(
        self, context: zmq.Context[zmq.Socket[bytes]], *, state: StateDir, root: RootDir, workers: list[str],
        info: dict[str, Any], reported: set[str], metrics: Metrics | None, backoff: Backoff | None = None,
        health: Health | None = None,
    ) -> None:
        super().__init__(context)
        self.state = state
        self.root = root
        self.info = info
        self.health = health
        """The daemon's own conditions (uptime, runtime, spawner), for `version` and `health`."""
        self._reported = reported
        self.life = Lifecycle(backoff, stored_config=lambda container_id: str(root.config(container_id)))
        self.alarm = Alarm(lambda: self.actor_ref.tell(wire.RestartDue()), time.monotonic)
        """Wakes this actor when a restart policy's next attempt is due."""
        self.storage_trouble: str | None = None
        """Why the state dir's storage is degraded (the EventLog says), or None."""
        self.heap = HeapReturn()
        self.pool = WorkerPool(workers, self.send)
        self.preparing: set[str] = set()
        """Ids of image starts whose bundle the ImageService is making."""
        self.image_containers: set[str] = set()
        """Ids of containers of images: their bundle goes when they are gone for good."""
        self.prepared: set[str] = set()
        """Ids of image bundles made by `containers.prepare` and not started yet: kept (across
        restarts: the bundle's PREPARED_MARK says so) until started or `containers.remove`d."""
        self.probe = None if metrics is None else SupervisorProbe(metrics, self.life, self.pool)
        """Shows each message's change to the metrics; None without --metrics-address, so that
        nothing optional runs around a message (an exit's, say) when no one scrapes."""

    def handlers(self) -> Handlers:
        return {
            wire.Request: self.on_request,
            wire.StartDone: self.on_start_done,
            wire.RuntimeDone: self.on_runtime_done,
            wire.ProcessExit: lambda m: self.carry_out(self.life.exited(m.token, m.status)),
            wire.Oom: lambda m: self.carry_out(self.life.oom(m.container_id, m.token)),
            wire.ShimDied: lambda m: self.carry_out(self.life.orphan(m.token)),
            wire.ShimGone: lambda m: self.carry_out(self.life.shim_gone(m.token)),
            wire.Recorded: lambda m: self.carry_out(self.life.recorded(m.token)),
            wire.Storage: self.on_storage,
            wire.RestartDue: lambda _: self.carry_out(self.life.due_restarts()),
            wire.ImageBundleDone: lambda m: start.bundle_made(self, m),
        }

    def on_start(self) -> None:
        super().on_start()
        bundles = self.root.image_bundles
        self.image_containers = {name for name in (os.listdir(bundles) if bundles.is_dir() else [])
                                 if CONTAINER_ID.match(name)}
        self.prepared = {name for name in self.image_containers if (bundles / name / PREPARED_MARK).exists()}
        counts = restore.restore(self, self._reported)
        self._reported.clear()
        for container_id in sorted(self.image_containers):  # a bundle no container owns (a crash mid-start)
            self.release_if_gone(container_id)
        if self.probe is not None:
            self.probe.show_all()
        logger.info("restored %d running, %d exited, %d orphaned; discarded %d damaged",
                    counts["running"], counts["exited"], counts["orphaned"], counts["discarded"])

    def serving_count(self) -> int:
        """How many containers clients see: the daemon's readiness and liveness check (a call
        through our inbox, see actors.service.watch)."""
        return sum(1 for container in self.life.containers.values() if container.listed)

    def on_stop(self) -> None:
        self.alarm.cancel()
        for process in self.life.processes.values():
            if process.pidfd >= 0:
                os.close(process.pidfd)
                process.pidfd = -1
        super().on_stop()

    def on_receive(self, message: Any) -> None:
        if self.probe is None:
            super().on_receive(message)
            return
        concern = self.probe.before(message)
        super().on_receive(message)
        self.probe.after(concern)

    def carry_out(self, effects: list[Effect]) -> None:
        """Perform what the lifecycle's transitions asked for, in their order."""
        for effect in effects:
            if isinstance(effect, Emit):
                self.emit(effect.event, effect.container_id, effect.process, effect.status, effect.token,
                          answer=effect.answer, attempt=effect.attempt)
                if effect.event == "exit" and effect.process == "init":
                    self.heap.shrank(len(self.life.containers))  # after the event is on its way
            elif isinstance(effect, Reply):
                self.reply(effect.client, error=effect.error)
            elif isinstance(effect, Submit):
                self.pool.submit(effect.task)
            elif isinstance(effect, ClosePidfd):
                os.close(effect.fd)
            elif isinstance(effect, RemoveProcessDir):
                shutil.rmtree(self.state.process(effect.container_id, effect.process), ignore_errors=True)
            elif isinstance(effect, RemoveContainerDir):
                remove_container_dir(self.state.container(effect.container_id))
                self.release_if_gone(effect.container_id)
            elif isinstance(effect, RemoveOutput):
                shutil.rmtree(self.state.output(effect.token), ignore_errors=True)
            elif isinstance(effect, SaveDefinition):
                self._save_definition(effect)
            elif isinstance(effect, ForgetDefinition):
                self.root.forget(effect.container_id)
                self.release_if_gone(effect.container_id)
            elif isinstance(effect, ArmAlarm):
                self.alarm.arm(effect.delay)
            elif isinstance(effect, LogLine):
                lifecycle_log.info(effect.message, *effect.args, extra=effect.fields)
            else:
                raise TypeError(f"unknown effect {effect!r}")

    def release_if_gone(self, container_id: str) -> None:
        """Have the ImageService remove the bundle of a container of an image that is gone for
        good: no record of it left (a restart policy's next life keeps it), its state dir removed."""
        if container_id in self.image_containers and container_id not in self.life.containers \
                and container_id not in self.life.removed and container_id not in self.prepared:
            self.image_containers.discard(container_id)
            self.send("images", wire.ReleaseImageBundle(container_id=container_id))

    def _save_definition(self, effect: SaveDefinition) -> None:
        """A definition that cannot be written (the root's disk is full) is logged: the container
        runs on, and the policy holds while this daemon runs, but would not survive a reboot."""
        definition = effect.definition
        try:
            self.root.save(definition)
        except OSError as exc:
            logger.error("cannot write the definition of container %s in %s: %s", definition["id"], self.root.root,
                         describe_os_error(exc))

    def reply(self, client: Client, result: Any = None, error: ApiError | None = None) -> None:
        route, request_id = client
        if route is None:
            return
        if error is not None:
            logger.debug("request %s answered with %s: %s", request_id, error.code, error.message,
                         extra=log_fields(request_id=request_id))
        body = error_reply(request_id, error) if error is not None else ok_reply(request_id, result)
        self.send("bus", wire.ClientReply(route=route, body=body))

    def emit(self, event: EventType, container_id: str, process: str | None = None, status: int | None = None,
             token: str | None = None, answer: tuple[Client, Any] | None = None, attempt: int | None = None) -> None:
        """Record an event; an exit carries its process token, so a restart never reports it twice.

        `answer` (client, result) is the client's reply, sent by the EventLog once the event is
        on record, so no client hears of a change whose event a crash could lose.
        """
        route, body = None, None
        if answer is not None and answer[0][0] is not None:
            route, body = answer[0][0], ok_reply(answer[0][1], answer[1])
        self.send("eventlog", wire.Emit(event=event, container_id=container_id, process=process, status=status,
                                        token=token, attempt=attempt, route=route, reply=body))
        if trace.ENABLED and token:
            trace.stamp(token, "supervisor: emit sent")

    def submit_job(self, job: str, container_id: str, params: dict[str, Any], request: wire.Request) -> None:
        """Run a runtime job on a free worker; its `RuntimeDone` answers `request`."""
        self.pool.submit(wire.RuntimeTask(job=job, container_id=container_id, params=params, route=request.route,
                                          request_id=request.request_id))

    def job_reply(self, message: wire.RuntimeDone) -> None:
        client = (message.route, message.request_id)
        error = message.error
        if message.ok or error is None:
            self.reply(client, {} if message.result is None else message.result)
        else:
            self.reply(client, error=ApiError.from_wire(error, f"{message.job} failed"))

    def on_request(self, request: wire.Request) -> None:
        """Handle a request; what is logged meanwhile names its sender's uid and the container it
        names (the request id comes with the message)."""
        target = request.params.get("id")
        with log_context(peer_uid=(request.peer or {}).get("uid"),
                         container_id=target if isinstance(target, str) and CONTAINER_ID.match(target) else None):
            self._handle_request(request)

    def _handle_request(self, request: wire.Request) -> None:
        client = (request.route, request.request_id)
        if request.method in STATE_CHANGING:  # who asked, whether or not it is granted
            peer = " ".join(f"{name}={value}" for name, value in (request.peer or {}).items())
            logger.info("%s %.80r by %s", request.method, request.params.get("id"), peer)
        handler = REQUEST_HANDLERS[request.method]
        try:
            if self.storage_trouble is not None and request.method in NEEDS_STORAGE:
                raise ApiError(ErrorCode.STORAGE_FULL, f"{request.method} refused: {self.storage_trouble}")
            result = handler(self, request)
        except ApiError as exc:
            self.reply(client, error=exc)
        except Exception as exc:
            logger.exception("request %s failed", request.method)
            self.reply(client, error=ApiError(ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}"))
        else:
            if result is not DEFERRED:
                self.reply(client, result)

    def on_start_done(self, message: wire.StartDone) -> None:
        self.pool.done(message.worker)
        if message.ok and message.started is not None:
            self.carry_out(self.life.started(message.token, message.started))
        else:
            error = ApiError.from_wire(message.error or {}, "start failed")
            self.carry_out(self.life.start_failed(message.token, error))
            self.release_if_gone(message.container_id)

    def on_runtime_done(self, message: wire.RuntimeDone) -> None:
        self.pool.done(message.worker)
        if message.job in ("pause", "resume"):
            pause.done(self, message)
        elif message.job == "orphan":  # a dead shim's process is dealt with: its exit is reported as any
            status = message.result if isinstance(message.result, int) else UNKNOWN_STATUS
            self.carry_out(self.life.exited(message.params["token"], status))
        elif message.job == "discard":
            restore.discarded(self, message)
        else:
            self.job_reply(message)

    def on_storage(self, message: wire.Storage) -> None:
        """The EventLog's word on the state dir's storage: shown by `version`, checked by requests."""
        self.storage_trouble = (message.reason or "storage full") if message.degraded else None
