"""The life of every container and process, as two state machines.

This module is the only place that changes a container's or a process's phase, and
it does no I/O: each transition checks that it is legal from the record's phase,
changes the records and returns the effects (emit an event, reply, submit a task,
remove a dir, close a pidfd) that the Supervisor actor then carries out. An illegal
transition raises `IllegalTransition`, a bug, never a silent no-op.

A process (one record per process, keyed by its token):

    starting -> running -> exited -> cleaning -> (removed)

with facts on the record: `early_exit` (its exit arrived before its start was done),
`shim_gone` (its shim has exited, which can happen in any phase), `exit_recorded`
(the EventLog has its exit event on record). A process is removed, and its state dir
with it, only when its shim is gone and its exit is on record: a crash at any moment
leaves either the exit on record or the state a restart reports it from.

A container:

    parked -> starting -> running <-> pausing/paused/resuming -> stopping -> removed
                                             (restart policy) -> restarting -> starting ...
                                                               -> stopped

`parked`: a start waiting for a predecessor with the same id to be cleaned up.
`stopping`: its init has exited and it waits for its other processes to exit first
(subscribers always see exec exits before the init's). `removed`: out of the table,
its id still reserved until its init is cleaned up. `discarding`: a damaged
container found at restore, its id reserved until a worker has killed what it names.
Under a restart policy (`restart.py`) a container that stopped is followed by a new record
with the same id: `restarting` (backing off until its next attempt, which then starts as any
start, parked if its predecessor is not yet cleaned up) or `stopped` (explicitly killed, or
the policy gave up), which only `containers rm` ends. Their definitions live in the root.
A forced removal (`containers rm --force`) kills a running container and, once its init's
exit is on record, ends it whatever its policy: no successor, its definition forgotten.

The phases, the table of legal moves (`MOVES`) and the records are in `phases.py`; the
effects in `effects.py`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

from actors.daemonlog import log_fields
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
from actors.supervisor.phases import (
    LISTED,
    NOBODY,
    PUBLISHED_STATUS,
    Client,
    Container,
    ContainerPhase,
    Process,
    ProcessPhase,
    move,
)
from actors.supervisor.restart import STOP_SIGNALS, Backoff, RestartPolicy, should_restart
from actors.wire import ApiError, ErrorCode
from actors.wire.messages import ExecTask, RuntimeTask, StartTask
from actors.wire.records import ContainerDefinition

__all__ = ["FINISHED_KEPT", "Lifecycle"]

logger = logging.getLogger(__name__)

FINISHED_KEPT = 256
"""Exited processes whose output stays readable (`logs` after the exit)."""


class Lifecycle:
    """Every container and process record, and the transitions between their phases."""

    def __init__(self, backoff: Backoff | None = None, stored_config: Callable[[str], str] = lambda _: "",
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.backoff = backoff or Backoff()
        self.stored_config = stored_config
        """id -> the config.json a restart of that container runs (kept in the root)."""
        self.clock, self.monotonic = clock, monotonic
        self.containers: dict[str, Container] = {}
        """id -> the container with that id (parked, starting, listed, stopping, restarting, stopped)."""
        self.removed: dict[str, Container] = {}
        """id -> a removed (or discarding) container whose id is still reserved."""
        self.processes: dict[str, Process] = {}
        """token -> every process from its start until its state is removed."""
        self.finished: collections.OrderedDict[tuple[str, str], tuple[str, int]] = collections.OrderedDict()
        """(container id, process name) -> (token, status) of recently exited processes."""

    # -- lookups ----------------------------------------------------------------------------

    def find(self, container_id: str) -> Container:
        """A running (or paused) container, or a `not_found` (or `conflict`) error."""
        container = self.shown(container_id)
        if not container.listed:
            raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {container.status}: "
                                               f"nothing of it runs (actorctl containers rm removes it)")
        return container

    def shown(self, container_id: str) -> Container:
        """A container clients can see (list, state), or a `not_found` error."""
        container = self.containers.get(container_id)
        if container is None or not container.shown:
            raise ApiError(ErrorCode.NOT_FOUND, f"container {container_id} not found")
        return container

    def find_process(self, container_id: str, name: str) -> Process:
        process = self.find(container_id).processes.get(name)
        if process is None or process.phase is ProcessPhase.STARTING:
            raise ApiError(ErrorCode.NOT_FOUND, f"process {name} of container {container_id} not found")
        return process

    # -- starts -----------------------------------------------------------------------------

    def start(self, container_id: str, bundle: str, labels: dict[str, str], init: bool,
              client: Client, task: StartTask, restart: RestartPolicy | None = None) -> list[Effect]:
        """A container start: its init's start task goes out now, or once the predecessor with
        the same id is cleaned up. `task` gets the init's token."""
        self.check_free(container_id)
        container = Container(id=container_id, bundle=bundle, labels=labels, init_token="", init=init,
                              client=client, restart=restart or RestartPolicy(), cri_log=task.cri_log)
        effects: list[Effect] = []
        if container.restart.keeps_definition:
            effects.append(SaveDefinition(container.definition()))
            task = dataclasses.replace(task, keep_config=True)
        if container_id in self.removed:
            container.phase = move("container", None, "start behind predecessor")
        else:
            container.phase = move("container", None, "start")
        self.containers[container_id] = container
        return effects + self._launch(container, task)

    def _launch(self, container: Container, task: StartTask) -> list[Effect]:
        """Give a starting (or parked) container its init process and submit (or park) its start."""
        token = uuid.uuid4().hex
        container.init_token = token
        process = Process(token=token, container_id=container.id, name="init", phase=move("process", None, "start"))
        container.processes["init"] = process
        self.processes[token] = process
        task = dataclasses.replace(task, token=token)
        if container.phase is ContainerPhase.PARKED:
            container.start_task = task
            return []
        return [Submit(task)]

    def check_free(self, container_id: str) -> None:
        """An `already_exists` error if a container has this id (saying so if its policy keeps it)."""
        existing = self.containers.get(container_id)
        if existing is not None:
            kept = existing.restart.keeps_definition and not existing.listed
            raise ApiError(ErrorCode.ALREADY_EXISTS, f"container {container_id} already exists" + (
                f" ({existing.status}, under restart policy {existing.restart}; "
                f"actorctl containers rm {container_id} removes it)" if kept else ""))

    def exec(self, container_id: str, name: str | None, client: Client, task: ExecTask) -> list[Effect]:
        """One more process in a running container; `name` None: the next free `exec-N`."""
        container = self.find(container_id)
        if container.phase is not ContainerPhase.RUNNING:
            raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {container.phase.value}")
        if name is None:
            container.exec_count += 1
            while f"exec-{container.exec_count}" in container.processes:
                container.exec_count += 1
            name = f"exec-{container.exec_count}"
        if name in container.processes:
            raise ApiError(ErrorCode.ALREADY_EXISTS, f"process {name} already exists in {container_id}")
        token = uuid.uuid4().hex
        process = Process(token=token, container_id=container_id, name=name, client=client,
                          phase=move("process", None, "start"))
        container.processes[name] = process
        self.processes[token] = process
        return [Submit(dataclasses.replace(task, token=token, process=name))]

    def started(self, token: str, info: dict[str, Any]) -> list[Effect]:
        """A worker started the process: `info` has its pids, pidfd, args, tty."""
        process = self.processes.get(token)
        if process is None:  # never happens while a start is under way; kept safe
            return [ClosePidfd(info["pidfd"])] if info["pidfd"] >= 0 else []
        move("process", process, "started")
        process.system_pid, process.shim_pid, process.pidfd = info["system_pid"], info["shim_pid"], info["pidfd"]
        process.system_start, process.args, process.tty = info.get("system_start"), info["args"], bool(info.get("tty"))
        container = self.containers[process.container_id]
        effects: list[Effect]
        if process.name == "init":
            move("container", container, "init started")
            container.started_at = self.monotonic()
            client, container.client = container.client, NOBODY
            logger.info("container %s started (pid %d)", container.id, process.system_pid,
                        extra=log_fields(container_id=container.id, process=process.name, request_id=client[1]))
            effects = [Emit("start-container", container.id, answer=(client, container.to_json()))]
            if container.oom:  # an OOM kill between `runc start` and now: its event follows the start's
                effects.append(Emit("oom", container.id))
        else:
            client, process.client = process.client, NOBODY
            logger.info("process %s started (pid %d)", process.describe(), process.system_pid,
                        extra=log_fields(container_id=container.id, process=process.name, request_id=client[1]))
            effects = [Emit("start-process", container.id, process=process.name, answer=(client, process.to_json()))]
        if process.early_exit is not None:
            effects += self.exited(token, process.early_exit)
        return effects

    def start_failed(self, token: str, error: ApiError) -> list[Effect]:
        """The start failed; the worker has undone it (nothing of it runs)."""
        process = self.processes.pop(token, None)
        if process is None:
            return []
        move("process", process, "start failed")
        container = self.containers[process.container_id]
        del container.processes[process.name]
        client = container.client if process.name == "init" else process.client
        logger.warning("start of %s failed: %s", process.describe(), error.message,
                       extra=log_fields(container_id=container.id, process=process.name, request_id=client[1]))
        if process.name == "init":
            if container.restarts:  # an attempt of the restart policy: nobody waits for it
                return self._next_life(container, None, "restart failed")
            move("container", container, "init start failed")
            del self.containers[container.id]
            forget = [ForgetDefinition(container.id)] if container.restart.keeps_definition else []
            return [Reply(client, error), *forget]
        return [Reply(client, error), *self._maybe_remove(container)]

    # -- exits ------------------------------------------------------------------------------

    def exited(self, token: str, status: int) -> list[Effect]:
        """A process's exit status (from its shim, its exit.json or an orphan job), once per process."""
        process = self.processes.get(token)
        if process is None or process.phase in (ProcessPhase.EXITED, ProcessPhase.CLEANING):
            return []  # a late duplicate
        if process.phase is ProcessPhase.STARTING:
            process.early_exit = status  # applied when its start is done
            return []
        move("process", process, "exit")
        process.status = status
        container = self.containers[process.container_id]
        forgotten = self._remember(process, status)  # after the exit's event: no file I/O ahead of it
        if process.name != "init":
            del container.processes[process.name]
            effects = self._emit_exit(process)
            exited = LogLine("process %s exited with %d", (process.describe(), status),
                             log_fields(container_id=container.id, process=process.name))
            return effects + self._maybe_remove(container) + forgotten + [exited]
        move("container", container, "init exited")
        return self._maybe_remove(container) + forgotten

    def orphan(self, token: str) -> list[Effect]:
        """A process's shim died without recording its exit: a worker kills what is left of it
        and finds its status (then `exited`)."""
        process = self.processes.get(token)
        if process is None or process.phase is not ProcessPhase.RUNNING:
            return []
        container = self.containers[process.container_id]
        logger.warning("the shim of %s died", process.describe(),
                       extra=log_fields(container_id=container.id, process=process.name))
        return [Submit(RuntimeTask(job="orphan", container_id=container.id, params={
            "token": process.token, "process": process.name, "system_pid": process.system_pid,
            "system_start": process.system_start,
            "paused": container.phase in (ContainerPhase.PAUSED, ContainerPhase.RESUMING)}))]

    def shim_gone(self, token: str) -> list[Effect]:
        process = self.processes.get(token)
        if process is None:
            return []
        process.shim_gone = True
        return self._maybe_clean(process)

    def recorded(self, token: str) -> list[Effect]:
        """The EventLog has the exit event of `token` on record."""
        process = self.processes.get(token)
        if process is None or process.phase is not ProcessPhase.CLEANING:
            return []
        process.exit_recorded = True
        return self._maybe_clean(process)

    def _emit_exit(self, process: Process, answer: tuple[Client, Any] | None = None) -> list[Effect]:
        move("process", process, "exit emitted")
        effects: list[Effect] = [Emit("exit", process.container_id, process=process.name, status=process.status,
                                      token=process.token, answer=answer)]
        if process.pidfd >= 0:
            effects.append(ClosePidfd(process.pidfd))
            process.pidfd = -1
        return effects

    def _maybe_remove(self, container: Container) -> list[Effect]:
        """Remove a stopping container once its init is the only process left."""
        if container.phase is not ContainerPhase.STOPPING or list(container.processes) != ["init"]:
            return []
        init = container.processes.pop("init")
        move("container", container, "last process exited")
        del self.containers[container.id]
        self.removed[container.id] = container
        exited = LogLine("container %s exited with %s", (container.id, init.status),
                         log_fields(container_id=container.id, process=init.name))
        if container.removal is not NOBODY:  # a forced removal: no next life, whatever the policy
            effects = self._emit_exit(init, answer=(container.removal, {}))
            return effects + ([ForgetDefinition(container.id)] if container.restart.keeps_definition else []) + [exited]
        effects = self._emit_exit(init)
        if container.restart.keeps_definition:
            effects += self._next_life(container.successor(), init.status, None)
        return [*effects, exited]

    def _next_life(self, container: Container, status: int | None, failed_start: str | None) -> list[Effect]:
        """After a container stopped (`status`) or a restart attempt failed to start
        (`failed_start`: the transition from starting): restart it after a back-off, or keep it
        stopped, as its policy says."""
        container.last_status = status
        if should_restart(container.restart, status=status, oom=container.oom, stopped=container.stop_requested,
                          restarts=container.restarts):
            ran = self.monotonic() - container.started_at if status is not None else 0.0
            container.streak = self.backoff.next_streak(container.streak, ran)
            delay = self.backoff.delay(container.streak)
            container.next_attempt = self.clock() + delay
            if failed_start is None:
                container.phase = move("container", None, "restart scheduled")
            else:
                move("container", container, failed_start)
            self.containers[container.id] = container
            logger.info("container %s restarts in %.1fs (attempt %d)", container.id, delay, container.restarts + 1,
                        extra=log_fields(container_id=container.id))
            return [Emit("restart", container.id, status=status, attempt=container.restarts + 1),
                    SaveDefinition(container.definition()), ArmAlarm(delay)]
        container.next_attempt = None
        if failed_start is None:
            container.phase = move("container", None, "kept stopped")
        else:
            move("container", container, "restart failed, given up")
        self.containers[container.id] = container
        logger.info("container %s stays stopped (restart policy %s)", container.id, container.restart,
                    extra=log_fields(container_id=container.id))
        return [SaveDefinition(container.definition())]

    def _maybe_clean(self, process: Process) -> list[Effect]:
        """Remove an exited process's state once its shim is gone and its exit is on record."""
        if process.phase is not ProcessPhase.CLEANING or not (process.shim_gone and process.exit_recorded):
            return []
        move("process", process, "cleaned up")
        del self.processes[process.token]
        if process.name != "init":
            return [RemoveProcessDir(process.container_id, process.name)]
        container = self.removed.pop(process.container_id)
        move("container", container, "init cleaned up")
        return [RemoveContainerDir(container.id), *self._unpark(container.id)]

    def _unpark(self, container_id: str) -> list[Effect]:
        """The id's predecessor is gone: a start that waited for it goes ahead."""
        container = self.containers.get(container_id)
        if container is None or container.phase is not ContainerPhase.PARKED:
            return []
        move("container", container, "predecessor cleaned up")
        task, container.start_task = container.start_task, None
        assert task is not None
        return [Submit(task)]

    def _remember(self, process: Process, status: int) -> list[Effect]:
        """Keep the output of the last FINISHED_KEPT exited processes readable."""
        effects: list[Effect] = []
        key = (process.container_id, process.name)
        replaced = self.finished.pop(key, None)
        if replaced is not None:
            effects.append(RemoveOutput(replaced[0]))
        self.finished[key] = (process.token, status)
        while len(self.finished) > FINISHED_KEPT:
            _, (token, _) = self.finished.popitem(last=False)
            effects.append(RemoveOutput(token))
        return effects

    # -- pause and resume -------------------------------------------------------------------

    def pause(self, container_id: str, job: str) -> None:
        """Begin a pause (`job` "pause") or resume ("resume"); the caller submits the job."""
        container = self.find(container_id)
        if container.phase in (ContainerPhase.PAUSING, ContainerPhase.RESUMING):
            under_way = "pause" if container.phase is ContainerPhase.PAUSING else "resume"
            raise ApiError(ErrorCode.CONFLICT, f"a {under_way} of {container_id} is under way")
        wanted = ContainerPhase.RUNNING if job == "pause" else ContainerPhase.PAUSED
        if container.phase is not wanted:
            raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {PUBLISHED_STATUS[container.phase]}")
        move("container", container, job)

    def paused(self, container_id: str, job: str, ok: bool, answer: tuple[Client, Any]) -> list[Effect] | None:
        """A pause or resume job is done: the event (which answers the client), or None when
        the caller is to reply with the job's own result (it failed, or the init exited meanwhile)."""
        container = self.containers.get(container_id)
        under_way = ContainerPhase.PAUSING if job == "pause" else ContainerPhase.RESUMING
        if container is None or container.phase is not under_way:
            return None
        if not ok:
            move("container", container, f"{job} failed")
            return None
        move("container", container, "paused" if job == "pause" else "resumed")
        return [Emit("pause" if job == "pause" else "resume", container_id, answer=answer)]

    def oom(self, container_id: str, token: str) -> list[Effect]:
        container = self.containers.get(container_id)
        if container is None or container.init_token != token:
            return []
        container.oom = True
        if container.phase is ContainerPhase.STARTING:
            return []  # `started` emits it after start-container, which comes first for every container
        return [Emit("oom", container_id)]

    # -- restart policies -------------------------------------------------------------------

    def signalled(self, container_id: str, signum: int) -> None:
        """A signal to a container's init (or all its processes): a stop signal is an explicit stop."""
        if signum in STOP_SIGNALS:
            self.find(container_id).stop_requested = True

    def due_restarts(self) -> list[Effect]:
        """Start every restarting container whose next attempt is due; re-arm for the next one."""
        now = self.clock()
        effects: list[Effect] = []
        later = []
        for container in list(self.containers.values()):
            if container.phase is not ContainerPhase.RESTARTING or container.next_attempt is None:
                continue
            if container.next_attempt > now:
                later.append(container.next_attempt - now)
                continue
            container.next_attempt = None
            container.restarts += 1
            container.oom = False
            move("container", container, "restart due behind predecessor" if container.id in self.removed
                 else "restart due")
            logger.info("container %s: restart %d", container.id, container.restarts,
                        extra=log_fields(container_id=container.id))
            task = StartTask(token="", container_id=container.id, bundle=container.bundle, labels=container.labels,
                             stdin=False, checkpoint=None, init=container.init,
                             config=self.stored_config(container.id), cri_log=container.cri_log)
            effects += [SaveDefinition(container.definition()), *self._launch(container, task)]
        if later:
            effects.append(ArmAlarm(min(later)))
        return effects

    def remove(self, container_id: str) -> list[Effect]:
        """`containers rm`: forget a stopped or restarting container."""
        container = self.shown(container_id)
        if container.phase not in (ContainerPhase.STOPPED, ContainerPhase.RESTARTING):
            raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is {container.status}: kill it first, "
                                               "or remove it with force (only a stopped or restarting container "
                                               "is removed as it is)")
        move("container", container, "removed by client")
        del self.containers[container_id]
        logger.info("container %s removed", container_id, extra=log_fields(container_id=container_id))
        return [ForgetDefinition(container_id)]

    def force_remove(self, container_id: str, client: Client) -> list[Effect] | None:
        """`containers rm --force` of a container that runs: an explicit stop and a kill of all its
        processes; `client` is answered with its init's exit, which ends it whatever its policy.
        None when there is nothing to kill (stopped or restarting: `remove` does it at once)."""
        container = self.shown(container_id)
        if container.phase in (ContainerPhase.STOPPED, ContainerPhase.RESTARTING):
            return None
        if container.phase not in LISTED:
            raise ApiError(ErrorCode.CONFLICT, f"container {container_id} is starting (a restart): try again "
                                               "once it runs")
        if container.removal is not NOBODY:
            raise ApiError(ErrorCode.CONFLICT, f"a forced removal of {container_id} is under way")
        container.stop_requested = True
        container.removal = client
        logger.info("container %s: forced removal, killing every process", container_id,
                    extra=log_fields(container_id=container_id))
        # runc kill --all thaws a paused container after signalling it, so a frozen one dies too
        return [Submit(RuntimeTask(job="kill_all", container_id=container_id, params={"signal": int(signal.SIGKILL)}))]

    def restored_definition(self, definition: ContainerDefinition, policy: RestartPolicy) -> list[Effect]:
        """A definition in the root whose container has no state (a reboot wiped it, or the
        daemon stopped while it was stopped or backing off): bring it back as its policy says."""
        container = Container(id=definition["id"], bundle=definition["bundle"], labels=definition["labels"],
                              init_token="", init=definition["init"], restart=policy,
                              restarts=definition["restarts"], streak=definition["streak"],
                              stop_requested=definition["stopped"], last_status=definition["last_status"],
                              cri_log=definition.get("cri_log", ""))
        stopped = definition["stopped"]
        if not stopped and definition["next_attempt"] is not None:  # it was backing off: keep the attempt's time
            container.phase = move("container", None, "restart scheduled")
            container.next_attempt = definition["next_attempt"]
            self.containers[container.id] = container
            return [ArmAlarm(max(0.0, container.next_attempt - self.clock()))]
        # it was running (its state, exit status included, is gone with a reboot) or stopped
        if policy.starts_with_the_daemon(stopped=stopped):
            container.streak = 0
            container.stop_requested = False
            return self._next_life(container, None, None)
        container.phase = move("container", None, "kept stopped")
        self.containers[container.id] = container
        return [] if stopped else [SaveDefinition(container.definition())]

    # -- restore ----------------------------------------------------------------------------

    def restored(self, container: Container, paused: bool) -> None:
        """A container of a previous run, with its processes in `container.processes` (running)."""
        container.phase = move("container", None, "restored paused" if paused else "restored running")
        for process in container.processes.values():
            process.phase = move("process", None, "restored")
            self.processes[process.token] = process
        self.containers[container.id] = container

    def discard(self, container_id: str) -> None:
        """A damaged container found at restore: its id is reserved until `discarded`."""
        container = Container(id=container_id, bundle="", labels={}, init_token="")
        container.phase = move("container", None, "discard")
        self.removed[container_id] = container

    def discarded(self, container_id: str) -> list[Effect]:
        container = self.removed.get(container_id)
        if container is None or container.phase is not ContainerPhase.DISCARDING:
            return []
        move("container", container, "discarded")
        del self.removed[container_id]
        return [RemoveContainerDir(container_id), *self._unpark(container_id)]
