"""The Worker actor: starts containers and runs other blocking runtime calls.

The Supervisor hands a task to a worker only when that worker is free (a
ready-worker queue, not round-robin), so one slow start never delays another.

Start path (containerd v0.2's `startTasks`, made safe):
  spawn the shim -> wait for `runc create` (deadline) -> open a pidfd on the
  container process -> tell the Monitor to watch the shim -> `runc start`
  (deadline) -> report. On any failure, everything made so far is undone
  before the error is reported: no runc container, no shim, no state dir.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import zmq

from actors.statedir import StateDir, write_json_atomic
from actors.base import BusActor
from actors.wire import ApiError, ErrorCode
from actors.worker.runtime import Runtime
from shimproc.config import ShimConfig
from shimproc.spawner import Spawner

__all__ = ["Worker", "bundle_args"]

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 10.0


def bundle_args(bundle: Path) -> list[str]:
    """The process args of a bundle's config.json (to show in listings)."""
    try:
        config = json.loads((bundle / "config.json").read_bytes())
    except OSError as exc:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"cannot read {bundle / 'config.json'}: {exc.strerror}") from None
    except ValueError:
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{bundle / 'config.json'} is not valid JSON") from None
    args = config.get("process", {}).get("args") if isinstance(config, dict) else None
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ApiError(ErrorCode.INVALID_PARAMS, f"{bundle / 'config.json'} has no process.args")
    return args


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process `pid` has exited; False if it is still there at the deadline."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _kill_group(leader: int) -> None:
    try:
        os.killpg(leader, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_ready(fd: int, deadline: float) -> dict[str, Any] | None:
    """The shim's one-line create result; None if the shim died or the deadline passed."""
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        data += chunk
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


class Worker(BusActor):
    def __init__(
        self,
        context: zmq.Context,
        name: str,
        *,
        state: StateDir,
        runtime: Runtime,
        spawner: Spawner,
        start_timeout: float,
        report_address: str,
    ) -> None:
        super().__init__(context)
        self.name = name
        self.state = state
        self.runtime = runtime
        self.spawner = spawner
        self.start_timeout = start_timeout
        self.report_address = report_address

    def on_start_task(self, task: dict[str, Any]) -> None:
        container_id, token = task["id"], task["token"]
        try:
            process = self._start(container_id, Path(task["bundle"]), task["labels"], token)
        except ApiError as exc:
            self.send("supervisor", "start_done", worker=self.name, token=token, id=container_id,
                      ok=False, error=exc.to_wire())
        except Exception as exc:
            logger.exception("start of %s failed", container_id)
            self.send("supervisor", "start_done", worker=self.name, token=token, id=container_id,
                      ok=False, error=ApiError(ErrorCode.INTERNAL, f"start failed: {exc}").to_wire())
        else:
            self.send("supervisor", "start_done", worker=self.name, token=token, id=container_id,
                      ok=True, process=process)

    def _start(self, container_id: str, bundle: Path, labels: dict[str, str], token: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.start_timeout
        args = bundle_args(bundle)
        container_dir = self.state.container(container_id)
        try:
            container_dir.mkdir(mode=0o700, parents=False)
        except FileExistsError:
            raise ApiError(ErrorCode.CONFLICT, f"state of a container {container_id} is still on disk") from None
        shim_pid = None
        timed_out = False
        try:
            write_json_atomic(
                container_dir / "container.json",
                {"id": container_id, "bundle": str(bundle), "labels": labels, "created": time.time()},
                durable=False,
            )
            procdir = container_dir / "init"
            procdir.mkdir(mode=0o700)
            write_json_atomic(procdir / "process.json", {"token": token, "args": args}, durable=False)
            config = ShimConfig(
                container_id=container_id,
                process_id="init",
                token=token,
                bundle=str(bundle),
                procdir=str(procdir),
                runtime=self.runtime.binary,
                runtime_root=str(self.runtime.root),
                report_address=self.report_address,
            )
            shim = self.spawner.spawn(config, timeout=self.start_timeout)
            shim_pid = shim.pid
            try:
                reply = read_ready(shim.ready_fd, deadline)
            except TimeoutError:
                timed_out = True
                raise ApiError(
                    ErrorCode.TIMEOUT,
                    f"container {container_id} was not created within {self.start_timeout:g}s",
                ) from None
            finally:
                os.close(shim.ready_fd)
            if reply is None:
                raise ApiError(ErrorCode.RUNTIME_ERROR, f"the shim of {container_id} died during create")
            if not reply.get("ok"):
                raise ApiError(ErrorCode.RUNTIME_ERROR, str(reply.get("error")))
            system_pid = int(reply["pid"])
            pidfd = os.pidfd_open(system_pid)
            try:
                self.send("monitor", "watch_process", token=token, id=container_id, pid="init",
                          shim_pid=shim.pid, procdir=str(procdir))
                self.runtime.start(container_id, timeout=max(0.1, deadline - time.monotonic()))
            except BaseException:
                os.close(pidfd)
                raise
            return {
                "pid": "init",
                "system_pid": system_pid,
                "shim_pid": shim.pid,
                "args": args,
                "pidfd": pidfd,
            }
        except BaseException:
            self._undo_start(container_id, container_dir, shim_pid, stuck=timed_out)
            raise

    def _undo_start(self, container_id: str, container_dir: Path, shim_pid: int | None, stuck: bool) -> None:
        """Remove every trace of a failed start: runc container, shim, state dir.

        A shim that is `stuck` in create (deadline passed) is killed with its
        whole process group (runc and its hooks) first; otherwise it finishes
        on its own once the runc container is deleted.
        """
        if shim_pid is not None and stuck:
            _kill_group(shim_pid)
        try:
            self.runtime.delete(container_id, timeout=CLEANUP_TIMEOUT)
        except ApiError as exc:
            logger.error("cleanup of %s: %s", container_id, exc.message)
        if shim_pid is not None and not wait_gone(shim_pid, CLEANUP_TIMEOUT):
            logger.error("shim %d of %s did not exit; killing it", shim_pid, container_id)
            _kill_group(shim_pid)
            wait_gone(shim_pid, CLEANUP_TIMEOUT)
            self.runtime.delete(container_id, timeout=CLEANUP_TIMEOUT)
        shutil.rmtree(container_dir, ignore_errors=True)

    def on_runtime_task(self, task: dict[str, Any]) -> None:
        job, container_id, args = task["job"], task["id"], task["args"]
        error = None
        try:
            if job == "kill_all":
                self.runtime.kill(container_id, int(args[0]), all_processes=True, timeout=self.start_timeout)
            elif job == "delete":
                self.runtime.delete(container_id, timeout=self.start_timeout)
            else:
                raise ApiError(ErrorCode.INTERNAL, f"unknown runtime job {job!r}")
        except ApiError as exc:
            error = exc.to_wire()
        self.send("supervisor", "runtime_done", worker=self.name, job=job, id=container_id,
                  ok=error is None, error=error, route=task.get("route"),
                  request_id=task.get("request_id"))
