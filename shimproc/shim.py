"""One shim: create the container process with the runtime, reap, report the exit.

Lifecycle:
  1. become a child subreaper, so the container process is re-parented to us;
  2. `runc create`; tell the starter through the ready pipe: {"ok", "pid"|"error"};
  3. reap every child until the container process exits (no zombies, ever);
  4. write `exit.json` durably, then push the exit report to the daemon;
  5. for an init process, `runc delete`; exit.

A dead daemon cannot hang us: the report socket lingers a bounded time, and the
durable `exit.json` is what a restarted daemon reads.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import time
from pathlib import Path

import zmq
from setproctitle import setproctitle

from actors.statedir import write_json_atomic
from actors.wire import pack
from actors.wire.messages import make
from shimproc.config import ShimConfig

__all__ = ["run_shim"]

PR_SET_CHILD_SUBREAPER = 36
REPORT_LINGER_MS = 2000
"""How long an undelivered exit report may hold the shim after the process exits."""

_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD)


def exit_status(wait_status: int) -> int:
    """The exit code, or 128+signal for a process killed by a signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Reaper:
    """Reaps every child of this process and remembers the statuses it collected."""

    def __init__(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.statuses: dict[int, int] = {}

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.statuses[pid] = exit_status(status)

    def wait_for(self, pid: int, deadline: float | None = None) -> int | None:
        """Block until `pid` is reaped (reaping all others meanwhile); None on deadline."""
        while True:
            self.reap()
            if pid in self.statuses:
                return self.statuses.pop(pid)
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if deadline is not None and timeout == 0.0:
                return None
            select.select([self._wake_r], [], [], timeout)
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass


class Shim:
    def __init__(self, config: ShimConfig, ready_fd: int) -> None:
        self.config = config
        self.ready_fd = ready_fd
        self.procdir = Path(config.procdir)
        self.reaper = Reaper()

    def runtime_argv(self, *args: str) -> list[str]:
        return [
            self.config.runtime,
            "--root", self.config.runtime_root,
            "--log", str(self.procdir / "log.json"),
            "--log-format", "json",
            *args,
        ]

    def spawn(self, argv: list[str], stdout: str = os.devnull, stderr: str = os.devnull) -> int:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        ]
        return os.posix_spawnp(
            argv[0], argv, os.environ, file_actions=actions, setsigdef=_RESET_SIGNALS, setsigmask=()
        )

    def runtime_error(self) -> str:
        """The last error the runtime logged, for the user."""
        message = ""
        try:
            lines = (self.procdir / "log.json").read_text(errors="replace").splitlines()
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

    def tell_starter(self, reply: dict[str, object]) -> None:
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        os.close(self.ready_fd)
        self.ready_fd = -1

    def delete_container(self) -> None:
        pid = self.spawn(self.runtime_argv("delete", "--force", self.config.container_id))
        self.reaper.wait_for(pid, deadline=time.monotonic() + 30)

    def run(self) -> int:
        context = zmq.Context()
        report = context.socket(zmq.PUSH)
        report.setsockopt(zmq.LINGER, REPORT_LINGER_MS)
        report.setsockopt(zmq.SNDHWM, 16)
        report.connect(self.config.report_address)
        try:
            return self._run(report)
        finally:
            report.close()
            context.term()

    def _run(self, report: zmq.Socket) -> int:
        config = self.config
        create = self.spawn(
            self.runtime_argv(
                "create",
                "--bundle", config.bundle,
                "--pid-file", str(self.procdir / "pid"),
                config.container_id,
            ),
            stdout=str(self.procdir / "stdout.log"),
            stderr=str(self.procdir / "stderr.log"),
        )
        if self.reaper.wait_for(create) != 0:
            reason = self.runtime_error()
            self.delete_container()
            self.tell_starter({"ok": False, "error": reason})
            return 1
        try:
            pid = int((self.procdir / "pid").read_text().strip())
        except (OSError, ValueError):
            self.delete_container()
            self.tell_starter({"ok": False, "error": "the runtime wrote no pid file"})
            return 1
        self.tell_starter({"ok": True, "pid": pid})

        status = self.reaper.wait_for(pid)
        assert status is not None
        write_json_atomic(self.procdir / "exit.json", {"status": status, "time": time.time()})
        report.send(
            pack(
                make(
                    "shim_exit",
                    token=config.token,
                    id=config.container_id,
                    pid=config.process_id,
                    status=status,
                    shim_pid=os.getpid(),
                )
            )
        )
        if config.is_init:
            self.delete_container()
        self.reaper.reap()
        return 0


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of PID 1."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def become_shim(config: ShimConfig) -> None:
    """Process-wide set-up: title, subreaper, signals that must not stop a shim."""
    setproctitle(f"actor-shim {config.container_id} {config.process_id}")
    become_subreaper()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)


def run_shim(config: ShimConfig, ready_fd: int) -> int:
    """Run one shim to completion in this process; returns its exit code."""
    become_shim(config)
    shim = Shim(config, ready_fd)
    try:
        return shim.run()
    except Exception as exc:
        with open(Path(config.procdir) / "shim.log", "a") as log:
            log.write(f"{time.time():.3f} shim failed: {type(exc).__name__}: {exc}\n")
        shim.tell_starter({"ok": False, "error": f"shim failed: {exc}"})
        print(f"actor-shim: {exc}", file=sys.stderr)
        return 2
