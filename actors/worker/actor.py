"""The Worker actor: starts processes and runs every other blocking call.

The Supervisor hands a task to a worker only when that worker is free (a
ready-worker queue, not round-robin), so one slow start never delays another.

Start path (containerd v0.2's `startTasks`, made safe):
  spawn the shim -> wait for `runc create` (deadline) -> open a pidfd on the
  container process -> register the OOM watch -> tell the Monitor to watch the
  shim -> have the shim run `runc start` (deadline; the shim runs it so that it
  never deletes a container whose start is still finishing) -> report. An
  exec is the same without the start. On any failure, everything made so far is undone before the
  error is reported: no runc container, no shim, no state dir.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from actors.base import BusActor, Handlers
from actors.cgroups import (
    cgroup_places,
    oom_count_file,
    oom_watch_members,
    register_oom_watch,
    remove_leftover_cgroups,
)
from actors.daemonlog import log_fields
from actors.fdbudget import check_fd_reserve
from actors.rootdir import RootDir
from actors.rootfs import bind_rootfs, remove_container_dir
from actors.statedir import NO_SPACE, StateDir, write_json_atomic
from actors.wire import MAX_SHIM_MESSAGE, ApiError, ErrorCode, WireError, pack, unpack
from actors.wire import messages as wire
from actors.wire.records import ContainerRecord, ProcessMeta, ProcessState
from actors.wire.shim import CONTROL_LINGER_MS, ShimConfig, ShimReady, parse_ready
from actors.worker import jobs
from actors.worker.checkpoints import CheckpointDir, fd_path, new_work_dir, restore_flags
from actors.worker.runtime import Runtime
from actors.worker.spawner import Spawner
from actors.worker.spec import container_config, exec_process, read_bundle_config, read_config, read_config_bytes
from hostos.atomicfile import describe_os_error
from hostos.fdwait import readable
from hostos.procinfo import open_pidfd, start_time

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 10.0
CLEANUP_ATTEMPTS = 3
CONTROL_TIMEOUT = 5.0


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has exited; False if it is still there at the deadline.

    With no fd to spare for a pidfd (the very exhaustion that may have failed a start),
    it watches /proc instead: cleanup must not depend on what just failed.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        deadline = time.monotonic() + timeout
        while start_time(pid) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True
    try:
        return bool(readable([fd], timeout))
    finally:
        os.close(fd)


def _kill_group(leader: int) -> None:
    try:
        os.killpg(leader, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_ready(fd: int, deadline: float) -> ShimReady | None:
    """The shim's one-line create result; None if the shim died. TimeoutError at the deadline."""
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not readable([fd], remaining):
            raise TimeoutError
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    return parse_ready(data)


class Worker(BusActor):
    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        name: str,
        *,
        state: StateDir,
        root: RootDir,
        runtime: Runtime,
        spawner: Spawner,
        start_timeout: float,
        report_address: str,
        log_limit: int,
        fd_reserve: int,
    ) -> None:
        super().__init__(context)
        self.name = name
        self.state = state
        self.root = root
        """The persistent root: where a restart policy's config is kept."""
        self.runtime = runtime
        self.spawner = spawner
        self.start_timeout = start_timeout
        self.report_address = report_address
        self.log_limit = log_limit
        self.fd_reserve = fd_reserve
        """Fds a start or exec must leave free (actors.fdbudget)."""

    def handlers(self) -> Handlers:
        return {wire.StartTask: self.on_start_task, wire.ExecTask: self.on_exec_task,
                wire.RuntimeTask: self.on_runtime_task}

    def _done(self, task: wire.StartTask | wire.ExecTask, started: dict[str, Any] | None = None,
              error: ApiError | None = None) -> None:
        self.send("supervisor", wire.StartDone(worker=self.name, token=task.token, container_id=task.container_id,
                                               ok=error is None, started=started,
                                               error=error.to_wire() if error else None))

    def _guarded(self, task: Any, launch: Callable[[Any], dict[str, Any]]) -> None:
        try:
            process = launch(task)
        except ApiError as exc:
            self._done(task, error=exc)
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno in NO_SPACE:
                error = ApiError(ErrorCode.STORAGE_FULL, f"start of {task.container_id} failed: its state cannot be "
                                 f"written to {self.state.root}: {exc.strerror}")
            else:
                logger.exception("start of %s failed", task.container_id)
                error = ApiError(ErrorCode.INTERNAL, f"start failed: {exc}")
            self._done(task, error=error)
        else:
            self._done(task, started=process)

    def on_start_task(self, task: wire.StartTask) -> None:
        self._guarded(task, self._start_init)

    def on_exec_task(self, task: wire.ExecTask) -> None:
        self._guarded(task, self._start_exec)

    def _shim_config(self, task: wire.StartTask | wire.ExecTask, process: str, mode: str, tty: bool, *,
                     checkpoint: str = "", restore_args: list[str] | None = None, work_path: str = "") -> ShimConfig:
        token, container_id = task.token, task.container_id
        return ShimConfig(
            container_id=container_id, process=process, token=token,
            bundle=str(self.state.container(container_id)),
            procdir=str(self.state.process(container_id, process)), output_dir=str(self.state.output(token)),
            runtime=self.runtime.binary, runtime_root=str(self.runtime.root),
            report_address=self.report_address,
            control_path=str(self.state.shim_control(token)),
            console_path=str(self.state.shim_console(token)),
            mode=mode, tty=tty, stdin=task.stdin,
            checkpoint=checkpoint, restore_args=restore_args or [], work_path=work_path,
            log_limit=task.log_limit if isinstance(task, wire.ExecTask) and task.log_limit else self.log_limit,
            cri_log=task.cri_log if isinstance(task, wire.StartTask) else "",
        )

    def _start_init(self, task: wire.StartTask) -> dict[str, Any]:
        check_fd_reserve(self.fd_reserve)
        container_id, bundle = task.container_id, Path(task.bundle)
        deadline = time.monotonic() + self.start_timeout
        if task.config:
            source = Path(task.config)
            data = read_config_bytes(source)
        else:
            source = bundle / "config.json"
            data = read_bundle_config(bundle)
        config = container_config(bundle, data, source, init=task.init)
        if task.keep_config:
            self._keep_config(container_id, data)
        tty = bool(config["process"].get("terminal"))
        container_dir = self.state.container(container_id)
        try:
            container_dir.mkdir(mode=0o700)
        except FileExistsError:
            raise ApiError(ErrorCode.CONFLICT, f"state of a container {container_id} is still on disk") from None
        try:
            record = ContainerRecord(id=container_id, bundle=str(bundle), labels=task.labels, init=task.init,
                                     created=time.time())
            if task.cri_log:
                record["cri_log"] = task.cri_log
            write_json_atomic(container_dir / "container.json", record, durable=False)
            try:
                config["root"]["path"] = str(bind_rootfs(Path(config["root"]["path"]), container_dir))
            except OSError as exc:
                raise ApiError(ErrorCode.INVALID_PARAMS, str(exc)) from None
            write_json_atomic(container_dir / "config.json", config, durable=False)
            args = config["process"]["args"]
            if not task.checkpoint:
                return self._launch(self._shim_config(task, "init", "create", tty), args, deadline)
            with CheckpointDir(bundle) as checkpoints:
                image = checkpoints.open(task.checkpoint)
            work = new_work_dir(self.state.criu_work)
            try:
                shim_config = self._shim_config(task, "init", "restore", tty, checkpoint=fd_path(image),
                                                restore_args=restore_flags(image), work_path=str(work))
                return self._launch(shim_config, args, deadline)
            finally:
                os.close(image)
                shutil.rmtree(work, ignore_errors=True)
        except BaseException:
            remove_container_dir(container_dir)
            raise

    def _keep_config(self, container_id: str, data: bytes) -> None:
        """Keep the config's bytes in the root for a restart policy. One that cannot be written (the
        root's disk is full) is logged: the container runs on, and so does its policy while this
        daemon runs, but its restarts would fail for want of the copy."""
        try:
            self.root.keep_config(container_id, data)
        except OSError as exc:
            logger.error("cannot keep the config of container %s in %s: %s", container_id, self.root.root,
                         describe_os_error(exc), extra=log_fields(container_id=container_id))

    def _start_exec(self, task: wire.ExecTask) -> dict[str, Any]:
        check_fd_reserve(self.fd_reserve)
        deadline = time.monotonic() + self.start_timeout
        container_dir = self.state.container(task.container_id)
        procdir = self.state.process(task.container_id, task.process)
        process = exec_process(read_config(container_dir / "config.json"), task.spec)
        try:
            procdir.mkdir(mode=0o700)
        except FileExistsError:
            raise ApiError(ErrorCode.CONFLICT, f"state of process {task.process} is still on disk") from None
        except FileNotFoundError:
            raise ApiError(ErrorCode.NOT_FOUND, f"container {task.container_id} is gone") from None
        try:
            write_json_atomic(procdir / "process.json", process, durable=False)
            shim_config = self._shim_config(task, task.process, "exec", bool(process["terminal"]))
            return self._launch(shim_config, process["args"], deadline)
        except BaseException:
            shutil.rmtree(procdir, ignore_errors=True)
            raise

    def _launch(self, config: ShimConfig, args: list[str], deadline: float) -> dict[str, Any]:
        """Spawn the shim, wait for the runtime, start if it is a create; undo on failure."""
        procdir = Path(config.procdir)
        procdir.mkdir(mode=0o700, exist_ok=True)
        write_json_atomic(procdir / "meta.json", ProcessMeta(token=config.token, args=args, mode=config.mode,
                                                             tty=config.tty), durable=False)
        shim_pid: int | None = None
        pidfd = -1
        stuck = False
        try:
            shim = self.spawner.spawn(config, timeout=self.start_timeout)
            shim_pid = shim.pid
            try:
                reply = read_ready(shim.ready_fd, deadline)
            except TimeoutError:
                stuck = True
                raise ApiError(ErrorCode.TIMEOUT, f"{config.process} of {config.container_id} was not "
                               f"created within {self.start_timeout:g}s") from None
            finally:
                os.close(shim.ready_fd)
            if reply is None:
                raise ApiError(ErrorCode.RUNTIME_ERROR, f"the shim of {config.container_id} died during create")
            if not reply["ok"] or "pid" not in reply:
                raise ApiError(ErrorCode.RUNTIME_ERROR, str(reply.get("error")))
            system_pid, started = reply["pid"], reply.get("start")
            pidfd = open_pidfd(system_pid, started)
            watch = None
            if config.is_init and pidfd >= 0:
                try:
                    watch = register_oom_watch(system_pid)
                except FileNotFoundError:
                    pass  # the init is gone already: `runc start` reports it
            self.send("monitor", wire.WatchProcess(token=config.token, container_id=config.container_id,
                                                   process=config.process, shim_pid=shim_pid, procdir=str(procdir),
                                                   **oom_watch_members(watch)))
            if config.mode == "create":
                remaining = max(0.1, deadline - time.monotonic())
                oom_control = None if watch is None else str(oom_count_file(watch.kind, watch.directory))
                self._control(config.token, {"op": "start", "timeout": remaining, "oom_control": oom_control},
                              timeout=remaining + CONTROL_TIMEOUT, refused=ErrorCode.RUNTIME_ERROR)
            write_json_atomic(procdir / "state.json", ProcessState(
                token=config.token, system_pid=system_pid, system_start=started, shim_pid=shim_pid,
                shim_start=start_time(shim_pid)))
            return {"system_pid": system_pid, "shim_pid": shim_pid,
                    "args": args, "pidfd": pidfd, "tty": config.tty, "system_start": started}
        except BaseException:
            self._undo(config, shim_pid, stuck, pidfd)
            if pidfd >= 0:
                os.close(pidfd)
            raise

    def _undo(self, config: ShimConfig, shim_pid: int | None, stuck: bool, pidfd: int) -> None:
        """Remove every trace of a failed start: the process, its shim, runc's container.

        A shim that is `stuck` in create (deadline passed) is killed with its
        whole process group (runc and its hooks) first; otherwise it finishes
        on its own once the runc container (or the exec'd process) is gone. An
        exec'd process is killed through the pidfd opened on the pid its shim
        vouched for: never by a number read from a file. What cannot be deleted
        now is left to the next start-up's sweep (`jobs.sweep`), and logged.
        """
        if shim_pid is not None and stuck:
            _kill_group(shim_pid)
        if config.is_init:
            self._delete_container(config.container_id)
            if stuck:
                self._remove_leftover_cgroups(config.container_id)
        elif pidfd >= 0:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if shim_pid is not None and not wait_gone(shim_pid, CLEANUP_TIMEOUT):
            logger.error("shim %d of %s did not exit; killing it", shim_pid, config.container_id,
                         extra=log_fields(container_id=config.container_id))
            _kill_group(shim_pid)
            wait_gone(shim_pid, CLEANUP_TIMEOUT)
            if config.is_init:
                self._delete_container(config.container_id)

    def _remove_leftover_cgroups(self, container_id: str) -> None:
        """The cgroups of a create killed midway: runc's own cgroup is the shim's, which is
        actord's but where the shim moved (and runc may go one level up from there)."""
        parents = {directory for _, directory in cgroup_places(os.getpid()).values()}
        for procs in self.spawner.shim_cgroups:
            parents |= {Path(procs).parent, Path(procs).parent.parent}
        for leftover in remove_leftover_cgroups(container_id, parents):
            logger.info("removed the cgroup %s of the failed start of %s", leftover, container_id,
                        extra=log_fields(container_id=container_id))

    def _delete_container(self, container_id: str) -> None:
        """`runc delete --force`, tried a few times; a failure is logged, never raised."""
        for attempt in range(1, CLEANUP_ATTEMPTS + 1):
            try:
                self.runtime.delete(container_id, timeout=CLEANUP_TIMEOUT)
                return
            except ApiError as exc:
                logger.error("cleanup of %s, attempt %d of %d: %s", container_id, attempt, CLEANUP_ATTEMPTS,
                             exc.message, extra=log_fields(container_id=container_id))
            time.sleep(0.1 * attempt)
        logger.error("runc container %s is left for the next start-up's sweep", container_id,
                     extra=log_fields(container_id=container_id))

    def on_runtime_task(self, task: wire.RuntimeTask) -> None:
        job = task.job
        error = None
        result: Any = None
        try:
            if job == "control":
                self._control(task.params["token"], task.params["control"])
            else:
                result = jobs.run(self.runtime, job, task.container_id, task.params, self.state.criu_work,
                                  self.start_timeout)
        except ApiError as exc:
            error = exc.to_wire()
        except Exception as exc:
            logger.exception("%s of %s failed", job, task.container_id)
            error = ApiError(ErrorCode.INTERNAL, f"{job} failed: {exc}").to_wire()
        self.send("supervisor", wire.RuntimeDone(worker=self.name, job=job, container_id=task.container_id,
                                                 params=task.params, ok=error is None, error=error, result=result,
                                                 route=task.route, request_id=task.request_id))

    def _control(self, token: str, control: dict[str, Any], timeout: float = CONTROL_TIMEOUT,
                 refused: str = ErrorCode.CONFLICT) -> None:
        """Send one control message to a shim and wait for its acknowledgement."""
        sock = self._context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_SHIM_MESSAGE)
        try:
            path = self.state.shim_control(token)
            if not path.exists():
                raise ApiError(ErrorCode.CONFLICT, "the process has exited")
            sock.connect(f"ipc://{path}")
            sock.send(pack(wire.encode(wire.ShimControl(**control))))
            deadline = time.monotonic() + timeout
            while not sock.poll(100):
                if not path.exists() and not sock.poll(CONTROL_LINGER_MS):  # an ack may still be on its way
                    raise ApiError(ErrorCode.CONFLICT, "the process has exited")
                if time.monotonic() > deadline:
                    raise ApiError(ErrorCode.TIMEOUT, "the shim did not acknowledge in time")
            try:
                ack = wire.decode(unpack(sock.recv(), limit=MAX_SHIM_MESSAGE))
            except WireError as exc:
                raise ApiError(ErrorCode.INTERNAL, f"bad acknowledgement from the shim: {exc}") from None
            if not isinstance(ack, wire.ShimAck):
                raise ApiError(ErrorCode.INTERNAL, "bad acknowledgement from the shim")
            if not ack.ok:
                raise ApiError(refused, str(ack.error))
        finally:
            sock.close()
