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
"""

from __future__ import annotations

import _socket
import array
import ctypes
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import zmq
from setproctitle import setproctitle
from zmq.backend import Context, Socket, zmq_poll

from actors.wire import MAX_SHIM_MESSAGE, WireError, pack, trace, unpack
from actors.wire import messages as wire
from actors.wire.crilog import cri_log_problem
from actors.wire.records import exit_record
from actors.wire.shim import CONTROL_LINGER_MS, ROOTFS_MOUNT, ShimConfig, ShimReady, ready_line
from hostos.atomicfile import remove_file, reserve_file, write_file_atomic
from hostos.fdwait import readable
from hostos.libc import LIBC
from hostos.mounts import detach_mount
from hostos.procinfo import children, open_pidfd, parent_pid, start_time
from shimproc.crilog import open_cri_log, open_failure
from shimproc.stdio import ProcessEnds, Stdio

__all__ = ["Reaper", "become_subreaper", "fork", "in_helper", "run_shim", "set_signals"]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
HELPER_FDS_MAX = 8
_HELPER_FDS_SPACE = socket.CMSG_SPACE(HELPER_FDS_MAX * 4)
REPORT_LINGER_MS = 2000
"""How long an undelivered exit report may hold the shim after the process exits."""
CLEANUP_NICENESS = 10
"""The niceness of a shim's main thread once its exit report is sent: exit.json and `runc delete`
(a Go program that takes more CPU than the whole exit path) then yield to the report's way
through ZeroMQ's I/O thread (which keeps its priority) and actord; on a busy node they still
get their share (a nice value starves nothing)."""

_RESET_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGCHLD)

_libc_fork = ctypes.PyDLL(None).fork
_RUNTIME_ENV = dict(os.environ)
"""The runtime's environment (ours), as a plain dict made before the fork: converting
os.environ runs its Python-level mapping code for every variable in every shim."""
_POLLIN, _POLLOUT = int(zmq.POLLIN), int(zmq.POLLOUT)
_SEND_MORE, _SEND_LAST = int(zmq.SNDMORE | zmq.NOBLOCK), int(zmq.NOBLOCK)
"""pyzmq's flags as plain ints, combined before the fork: combining enum flags runs Python code."""
_signals_set = False
"""Whether this process image has its signal dispositions (a forked one inherits them)."""

Work = Callable[[], tuple[dict[str, Any], list[int]]]
"""One-off work for a helper: a message (plain data) and fds to hand back."""


def exit_status(wait_status: int) -> int:
    """The exit code, or 128+signal for a process killed by a signal."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


class Reaper:
    """Reaps every child of this process and remembers the statuses it collected.

    SIGCHLD wakes `wake_fd` (through `signal.set_wakeup_fd`, once `set_signals` has given it
    a handler), so a poll loop can wait on it.
    """

    def __init__(self) -> None:
        self.wake_fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self.statuses: dict[int, int] = {}

    @property
    def fds(self) -> tuple[int, int]:
        return self.wake_fd, self._wake_w

    def clear_wakeups(self) -> None:
        """Empty the wake-up pipe; call it when a poll found it readable."""
        try:
            os.read(self.wake_fd, 4096)  # a byte per signal: one read takes them all, a poll finds any rest
        except BlockingIOError:
            pass

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
            if readable([self.wake_fd], timeout):
                self.clear_wakeups()


class Shim:
    def __init__(self, config: ShimConfig, ready_fd: int) -> None:
        self.config = config
        self.ready_fd = ready_fd
        self.reaper = Reaper()
        self.started = config.mode != "create"
        self.oom_count_fd = -1
        """An init's memory cgroup file holding its OOM-kill count (named by the start message):
        the count goes with the exit report, read before `runc delete` removes the cgroup."""

    def path(self, name: str) -> str:
        """A file in this process's state dir."""
        return f"{self.config.procdir}/{name}"

    def runtime_argv(self, *args: str) -> list[str]:
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

    def runtime_error(self) -> str:
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

    def delete_container(self) -> None:
        pid = self.spawn(self.runtime_argv("delete", "--force", self.config.container_id))
        self.reaper.wait_for(pid, deadline=time.monotonic() + 30)
        detach_mount(os.path.join(self.config.bundle, ROOTFS_MOUNT))

    def runtime_command(self, console: bool) -> list[str]:
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

    def run(self) -> int:
        result, fds = in_helper(self._create)
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

    def _create(self) -> tuple[dict[str, Any], list[int]]:
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
        runtime = self.spawn(self.runtime_argv(*self.runtime_command(config.tty)), ends.child_fds)
        ends.after_spawn()
        if reaper.wait_for(runtime) != 0:
            return {"error": self.runtime_error()}, []
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

    def _fail(self, reason: str) -> int:
        if self.config.is_init:
            self.delete_container()
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
            write_file_atomic(self.path("exit.json"), exit_record(status, time.time()), durable=False)
        except OSError:
            pass  # our state is gone (a discarded container) or the disk is full: the report is out
        if config.is_init:
            self.delete_container()

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
        result, _ = in_helper(lambda: self._run_start(timeout))
        if "error" in result:
            return str(result["error"])
        self.started = True
        return None

    def _run_start(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        reaper = Reaper()
        pid = self.spawn(self.runtime_argv("start", self.config.container_id))
        status = reaper.wait_for(pid, deadline=time.monotonic() + timeout)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            reaper.wait_for(pid)
            return {"error": f"runtime start did not finish in {timeout:g}s"}, []
        if status != 0:
            return {"error": self.runtime_error()}, []
        return {}, []


def fork() -> int:
    """fork(2) without the interpreter's at-fork hooks; -1 if it fails.

    os.fork() runs them: in the child, threading, random and logging rebuild their state
    (copying ~600 KiB of pages a shim would otherwise share with the spawner), in the parent
    logging takes and releases its lock. They repair what other Python threads may have left
    mid-way; the spawner and the shims have no Python thread but their main one (ZeroMQ's
    threads are C threads) and hold no lock while they fork, so a child goes on with the
    state as it is: its one thread keeps its identity, and nothing here uses random. libc's
    own at-fork handlers (malloc's locks) still run. Called with the GIL held (PyDLL).
    """
    pid: int = _libc_fork()
    return pid


def in_helper(work: Work) -> tuple[dict[str, Any], list[int]]:
    """Run `work` in a short-lived child (killed if we die) and return its message and fds;
    {"error": ...} if it failed or died. The pages the helper writes die with it, while the
    shim would carry them for its whole life. (The channel is a bare `_socket` pair read with
    recvmsg: socket.socketpair and socket.recv_fds cost a shim some 200 KiB of pages.)"""
    ours, theirs = _socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    shim = os.getpid()
    pid = fork()
    if pid == 0:
        code = 2
        try:
            ours.close()
            LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() == shim:
                try:
                    message, fds = work()
                except Exception as exc:
                    message, fds = {"error": f"shim helper failed: {type(exc).__name__}: {exc}"}, []
                theirs.sendmsg([pack(message)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                code = 0
        finally:
            os._exit(code)
    theirs.close()
    if pid < 0:
        ours.close()
        return {"error": "cannot fork a shim helper"}, []
    data, ancillary, _, _ = ours.recvmsg(MAX_SHIM_MESSAGE, _HELPER_FDS_SPACE)
    ours.close()
    fds = [fd for _, _, payload in ancillary for fd in memoryview(payload).cast("i")]  # SCM_RIGHTS only
    os.waitpid(pid, 0)
    if not data:
        return {"error": "the shim's helper died"}, fds
    return unpack(data, limit=MAX_SHIM_MESSAGE), fds


def set_signals() -> None:
    """SIGCHLD wakes a Reaper; TERM, INT, HUP and PIPE cannot stop us. Once per process
    image: the spawner sets them for itself, and the shims it forks inherit them."""
    global _signals_set
    if _signals_set:
        return
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    _signals_set = True


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to this process instead of PID 1."""
    if LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


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
