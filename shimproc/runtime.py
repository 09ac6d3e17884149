"""The OCI runtime as one shim calls it: `runc create|exec|restore` with the process's stdio
ends (in the helper), `runc start` (in a helper, on the starter's word) and `runc delete`;
their command lines, the environment they run in and the errors they log.

What runs in a helper may call any library; what runs in the shim itself (the delete) keeps to
plain strings and C calls, as the rest of the shim does (see shimproc.shim).
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from actors.wire.crilog import cri_log_problem
from actors.wire.shim import ROOTFS_MOUNT, ShimConfig, ready_line
from hostos.atomicfile import reserve_file
from hostos.mounts import detach_mount
from hostos.procinfo import parent_pid, start_time
from shimproc.crilog import open_cri_log, open_failure
from shimproc.reaper import Reaper
from shimproc.stdio import ProcessEnds

__all__ = ["Runtime"]

_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD)
_RUNTIME_ENV = dict(os.environ)
"""The runtime's environment (ours), as a plain dict made before the fork: converting
os.environ runs its Python-level mapping code for every variable in every shim."""


class Runtime:
    """The runtime's calls for one shim's process, whose state dir is `config.procdir`."""

    def __init__(self, config: ShimConfig) -> None:
        self.config = config

    def path(self, name: str) -> str:
        """A file in this process's state dir."""
        return f"{self.config.procdir}/{name}"

    def argv(self, *args: str) -> list[str]:
        return [
            self.config.runtime,
            "--root", self.config.runtime_root,
            "--log", self.path("log.json"),
            "--log-format", "json",
            *args,
        ]

    @staticmethod
    def file_actions(stdio: list[tuple[int, int]] | None) -> list[tuple[Any, ...]]:
        """posix_spawn actions giving a child /dev/null, then the (fd, target) pairs of `stdio`."""
        actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, n, os.devnull, os.O_RDWR, 0) for n in (0, 1, 2)]
        return actions + [(os.POSIX_SPAWN_DUP2, fd, target) for fd, target in stdio or []]

    def spawn(self, argv: list[str], stdio: list[tuple[int, int]] | None = None) -> int:
        return os.posix_spawnp(argv[0], argv, _RUNTIME_ENV, file_actions=self.file_actions(stdio),
                               setsigdef=_RESET_SIGNALS, setsigmask=())

    def error(self) -> str:
        """The last error the runtime logged, for the user."""
        message = ""
        try:
            with open(self.path("log.json"), errors="replace") as log:
                lines = log.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("level") in ("error", "fatal"):
                message = str(record.get("msg", ""))
        return message or "the runtime failed without a message"

    def own_process(self) -> int | None:
        """In the helper: the process the runtime started, if the pid file names a child of
        the shim (the helper's parent).

        After `runc create|exec|restore -d` exits, its process is re-parented to the shim
        (the subreaper), which reaps it only once the helper is done. Any other number is
        refused: we never adopt, report or signal a process we do not own.
        """
        try:
            with open(self.path("pid"), "rb") as pid_file:
                pid = int(pid_file.read())
        except (OSError, ValueError):
            return None
        return pid if parent_pid(pid) == os.getppid() else None

    def command(self, console: bool) -> list[str]:
        """The runtime's arguments that make this process: create, exec or restore."""
        config = self.config
        pid_file = ["--pid-file", self.path("pid")]
        console_args = ["--console-socket", config.console_path] if console else []
        if config.mode == "exec":
            return ["exec", "-d", "--process", self.path("process.json"),
                    *pid_file, *console_args, config.container_id]
        if config.mode == "restore":
            return ["restore", "-d", "--bundle", config.bundle, "--image-path", config.checkpoint,
                    "--work-path", config.work_path, *config.restore_args, *pid_file, *console_args,
                    config.container_id]
        return ["create", "--bundle", config.bundle, *pid_file, *console_args, config.container_id]

    def create(self) -> tuple[dict[str, Any], list[int]]:
        """In the helper: have the runtime create the process. Its pid, the starter's reply and
        the layout of our stdio ends, with the ends; or an error."""
        config = self.config
        reaper = Reaper()
        cri_fd = -1
        if config.cri_log:  # checked on receipt, opened before the runtime makes anything
            problem = cri_log_problem(config.cri_log)
            if problem is not None:
                return {"error": f"CRI log {config.cri_log!r} {problem}"}, []
            try:
                cri_fd = open_cri_log(config.cri_log)
            except OSError as exc:
                return {"error": open_failure(config.cri_log, exc)}, []
        try:
            reserve_file(self.path("exit.json"))  # the exit is recorded even if the disk fills up
        except OSError:
            pass  # already full: the exit report still goes out
        ends = ProcessEnds(config.output_dir, config.log_limit, tty=config.tty, stdin=config.stdin,
                           console_path=config.console_path)
        runtime = self.spawn(self.argv(*self.command(config.tty)), ends.child_fds)
        ends.after_spawn()
        if reaper.wait_for(runtime) != 0:
            return {"error": self.error()}, []
        pid = self.own_process()
        if pid is None:
            return {"error": "the runtime's pid file names no process of this shim"}, []
        if config.tty:
            try:
                ends.receive_console(timeout=10)
            except OSError as exc:
                return {"error": f"no terminal from the runtime: {exc}"}, []
        layout, fds = ends.handover()
        layout["cri"] = len(fds) if cri_fd >= 0 else -1
        fds += [cri_fd] if cri_fd >= 0 else []
        return {**layout, "pid": pid, "ready": ready_line({"ok": True, "pid": pid, "start": start_time(pid)})}, fds

    def start(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        """In a helper: `runc start` of the created init; an error if it fails or outlasts `timeout`."""
        reaper = Reaper()
        pid = self.spawn(self.argv("start", self.config.container_id))
        status = reaper.wait_for(pid, deadline=time.monotonic() + timeout)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            reaper.wait_for(pid)
            return {"error": f"runtime start did not finish in {timeout:g}s"}, []
        if status != 0:
            return {"error": self.error()}, []
        return {}, []

    def delete(self, reaper: Reaper) -> None:
        """`runc delete --force` of the container (reaped by the shim's `reaper`), then the lazy
        unmount of its rootfs."""
        pid = self.spawn(self.argv("delete", "--force", self.config.container_id))
        reaper.wait_for(pid, deadline=time.monotonic() + 30)
        detach_mount(os.path.join(self.config.bundle, ROOTFS_MOUNT))
