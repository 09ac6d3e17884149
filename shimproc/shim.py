"""One shim: run one container process with the runtime, reap, report the exit.

Lifecycle:
  1. become a child subreaper, so the container process is re-parented to us;
  2. set up stdio (pipes or a terminal) and `runc create` / `runc exec -d` /
     `runc restore -d` (in a helper, see below);
  3. bind the control socket; tell the starter through the ready pipe:
     {"ok", "pid"|"error"};
  4. pump output into the log, serve control messages (start, stdin,
     close-stdin, resize, each acknowledged) and reap every child (no zombies,
     ever), until the container process exits. `runc start` runs here, on the
     starter's word, so a process that exits at once is never deleted while
     `runc start` is still finishing;
  5. drain its output, push the exit report, then write `exit.json`;
  6. for an init process, `runc delete`; exit once the output ends are closed.

A dead daemon cannot hang us: the report socket lingers a bounded time, and
`exit.json` is what a restarted daemon reads. It is renamed into place, not
fsynced: the state dir lives on a tmpfs (/run) whose files outlive any daemon
crash, and nothing there outlives a reboot, so a sync would only delay the report.

Memory: a shim shares the spawner's pages until one of them writes to a page,
and Python writes wherever it runs (reference counts, allocator pools, bytecode
caches): each library function a shim runs costs it a few pages for good. So
the one-off work runs in a short-lived helper child (`in_helper`), whose copies
die with it: reading and parsing the spawner's request, the runtime's create and
start calls (their waits, pid checks, error logs). What every shim needs is made
once in the spawner (the libc handle, the runtime's environment, the signal
dispositions), paths are plain strings (pathlib runs a dozen functions per
path), and the sockets are pyzmq's backend classes, whose methods are C.

This module is the shim's life and its loop (steps 3 to 6); its parts are
`helper.py` (the hook-less fork and the helper), `reaper.py` (subreaper, signals,
reaping), `runtime.py` (the runtime's calls), `stdio.py` (the process's stdio and
output), all imported by the spawner before it forks.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import zmq
from setproctitle import setproctitle
from zmq.backend import Context, Socket, zmq_poll

from actors.wire import MAX_SHIM_MESSAGE, WireError, pack, trace, unpack
from actors.wire import messages as wire
from actors.wire.records import exit_record
from actors.wire.shim import CONTROL_LINGER_MS, ShimConfig, ShimReady, ready_line
from hostos.atomicfile import remove_file, write_file_atomic
from hostos.procinfo import children, open_pidfd, start_time
from shimproc.helper import in_helper
from shimproc.reaper import Reaper, become_subreaper, set_signals
from shimproc.runtime import Runtime
from shimproc.stdio import Stdio

__all__ = ["run_shim"]

REPORT_LINGER_MS = 2000
"""How long an undelivered exit report may hold the shim after the process exits."""
CLEANUP_NICENESS = 10
"""The niceness of a shim's main thread once its exit report is sent: exit.json and `runc delete`
(a Go program that takes more CPU than the whole exit path) then yield to the report's way
through ZeroMQ's I/O thread (which keeps its priority) and actord; on a busy node they still
get their share (a nice value starves nothing)."""

_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)
_SEND_MORE, _SEND_LAST = int(zmq.SNDMORE | zmq.NOBLOCK), int(zmq.NOBLOCK)
"""pyzmq's flags as plain ints, combined before the fork: combining enum flags runs Python code."""


class Shim:
    """One shim's state across its life: the starter's ready pipe, the reaper, whether the
    process has been started, the OOM count's file."""

    def __init__(self, config: ShimConfig, ready_fd: int) -> None:
        self.config = config
        self.ready_fd = ready_fd
        self.reaper = Reaper()
        self.runtime = Runtime(config)
        self.started = config.mode != "create"
        self.oom_count_fd = -1
        """An init's memory cgroup file holding its OOM-kill count (named by the start message):
        the count goes with the exit report, read before `runc delete` removes the cgroup."""

    def tell_starter(self, reply: ShimReady) -> None:
        self._write_ready(ready_line(reply))

    def _write_ready(self, line: bytes) -> None:
        if self.ready_fd < 0:
            return
        try:
            os.write(self.ready_fd, line)
        except OSError:
            pass
        os.close(self.ready_fd)
        self.ready_fd = -1

    def run(self) -> int:
        result, fds = in_helper(self.runtime.create)
        if "error" in result:
            for fd in fds:
                os.close(fd)
            return self._fail(result["error"])
        config = self.config
        stdio = Stdio(config.output_dir, config.log_limit, tty=config.tty, layout=result, fds=fds,
                      cri_log=config.cri_log)
        context = Context(io_threads=1)
        report = Socket(context, zmq.PUSH)
        report.connect(config.report_address)
        control = Socket(context, zmq.ROUTER)
        control.set(zmq.MAXMSGSIZE, MAX_SHIM_MESSAGE)
        try:
            remove_file(config.control_path)
            control.bind(f"ipc://{config.control_path}")
            self._write_ready(result["ready"])
            self._serve(result["pid"], stdio, report, control)
        finally:
            control.close(linger=CONTROL_LINGER_MS)
            remove_file(config.control_path)
            report.close(linger=REPORT_LINGER_MS)
            context.term()
            stdio.close()
            if self.oom_count_fd >= 0:
                os.close(self.oom_count_fd)
        return 0

    def _fail(self, reason: str) -> int:
        if self.config.is_init:
            self.runtime.delete(self.reaper)
        self.kill_children()
        self.tell_starter({"ok": False, "error": reason})
        return 1

    def kill_children(self) -> None:
        """Kill and reap whatever the runtime left with us (an exec'd process whose start failed).

        Our children are ours by the kernel's word (/proc/<us>/task/*/children), and an
        unreaped child's pid cannot be reused: each is signalled through a pidfd.
        """
        for pid in children(os.getpid()):
            fd = open_pidfd(pid, start_time(pid))  # -1 for one that has exited already
            if fd < 0:
                continue
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                self.reaper.wait_for(pid, deadline=time.monotonic() + 10)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)
        self.reaper.reap()

    def _serve(self, pid: int, stdio: Stdio, report: Socket, control: Socket) -> None:
        """Pump output, answer control messages, reap; report the exit; wait for output EOF.

        An exit goes first: a round that reaps starts over, and a round starts with the exit
        if it has been reaped (here, or by the wait of a control message's runtime call), so
        only draining the output already there stands between the wake-up and the report.
        """
        exited = False
        while True:
            if not exited and pid in self.reaper.statuses:
                exited = True
                self._report_exit(self.reaper.statuses.pop(pid), stdio, report)
            if exited and not stdio.outputs:
                self.reaper.reap()
                self._answer(control, stdio)
                return
            items: list[tuple[Any, int]] = [(control, _POLLIN), (self.reaper.wake_fd, _POLLIN)]
            items += [(fd, _POLLIN) for fd in stdio.outputs]
            if stdio.wants_write:
                items.append((stdio.stdin_fd, _POLLOUT))
            ready = dict(zmq_poll(items, -1))  # every wake-up is an fd: an idle shim never runs
            if self.reaper.wake_fd in ready:
                self.reaper.clear_wakeups()
                self.reaper.reap()
                continue
            for fd in list(stdio.outputs):
                if fd in ready:
                    stdio.pump(fd)
            if stdio.wants_write:
                stdio.flush_stdin()
            if control in ready:
                self._answer(control, stdio)

    def _report_exit(self, status: int, stdio: Stdio, report: Socket) -> None:
        """Drain the output (so `logs` after the exit has all of it), report the exit, record
        it; then, for an init, delete the runtime's container.

        The report goes out before `exit.json` is written: the daemon removes this state dir
        only once we are gone, and a restarted daemon reads `exit.json` only once we are gone,
        so the record is always there for whoever needs it, and the report does not wait for it.
        (A shim killed between the two loses the exit only if the report was still queued.)
        """
        config = self.config
        if trace.ENABLED:
            trace.stamp(config.token, "shim reaped")
        stdio.drain()
        if trace.ENABLED:
            trace.stamp(config.token, "shim drained")
        kills = self._oom_kills()
        report.send(pack(wire.encode(wire.ShimExit(token=config.token, container_id=config.container_id,
                                                   process=config.process, status=status, shim_pid=os.getpid(),
                                                   oom_kills=kills))))
        if trace.ENABLED:
            trace.stamp(config.token, "shim reported")
        try:  # the rest is clean-up: it yields the CPU to the report on its way (this thread and its children)
            os.setpriority(os.PRIO_PROCESS, 0, CLEANUP_NICENESS)
        except OSError:
            pass
        try:
            write_file_atomic(self.runtime.path("exit.json"), exit_record(status, time.time()), durable=False)
        except OSError:
            pass  # our state is gone (a discarded container) or the disk is full: the report is out
        if config.is_init:
            self.runtime.delete(self.reaper)

    def _answer(self, control: Socket, stdio: Stdio) -> None:
        """Answer every control message waiting. (Frames and zmq_poll rather than socket options:
        pyzmq looks an option's type up in Python, in an enum, at every get.)"""
        while zmq_poll([(control, _POLLIN)], 0):
            frames = [control.recv(copy=False)]
            while frames[-1].more:  # the rest of a message has arrived with its first frame
                frames.append(control.recv(copy=False))
            if len(frames) != 2:
                continue
            try:
                message = wire.decode(unpack(frames[1].bytes, limit=MAX_SHIM_MESSAGE))
                if not isinstance(message, wire.ShimControl):
                    raise WireError("not a control message")
                error = self._control(message, stdio)
            except WireError as exc:
                error = str(exc)
            except OSError as exc:
                error = f"{exc.strerror or exc}"
            ack = wire.ShimAck(ok=error is None, error=error)
            try:
                control.send(frames[0], _SEND_MORE)
                control.send(pack(wire.encode(ack)), _SEND_LAST)
            except zmq.ZMQError:
                pass

    def _oom_kills(self) -> int | None:
        """The `oom_kill` count of the file the start message named; None without one."""
        if self.oom_count_fd < 0:
            return None
        try:
            text = os.pread(self.oom_count_fd, 4096, 0)
        except OSError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def _control(self, message: wire.ShimControl, stdio: Stdio) -> str | None:
        op = message.op
        if op == "start":
            if message.oom_control and self.oom_count_fd < 0:
                try:
                    self.oom_count_fd = os.open(message.oom_control, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                except OSError:
                    pass  # no count with the report: the Monitor reads the cgroup itself
            return self._start(float(message.timeout or 30))
        if op == "write_stdin":
            return stdio.write_stdin(message.data or b"")
        if op == "close_stdin":
            stdio.close_stdin()
            return None
        if op == "reopen_log":
            return stdio.reopen_cri_log()
        return stdio.resize(message.width or 80, message.height or 24)  # "resize": decode allows no other op

    def _start(self, timeout: float) -> str | None:
        """`runc start` for a created init (in a helper); an error message, or None."""
        if self.started:
            return "already started"
        result, _ = in_helper(lambda: self.runtime.start(timeout))
        if "error" in result:
            return str(result["error"])
        self.started = True
        return None


def become_shim(config: ShimConfig) -> None:
    """Process-wide set-up: title, subreaper, signals that must not stop a shim."""
    setproctitle(f"actor-shim {config.container_id} {config.process}")
    become_subreaper()
    set_signals()


def run_shim(config: ShimConfig, ready_fd: int) -> int:
    """Run one shim to completion in this process; returns its exit code."""
    become_shim(config)
    shim = Shim(config, ready_fd)
    try:
        return shim.run()
    except Exception as exc:
        try:
            with open(f"{config.procdir}/shim.log", "a") as log:
                log.write(f"{time.time():.3f} shim failed: {type(exc).__name__}: {exc}\n")
        except OSError:
            pass  # a full disk: the starter and stderr still hear of it
        shim.tell_starter({"ok": False, "error": f"shim failed: {exc}"})
        print(f"actor-shim: {exc}", file=sys.stderr)
        return 2
