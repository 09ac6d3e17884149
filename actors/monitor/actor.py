"""The Monitor actor.

Exits: two sources tell us a process is gone, the shim's exit report (fast
path, on the PULL socket the Monitor owns: no hop through the bus thread) and
the shim's own death, seen through a pidfd in the Monitor's own epoll.
Whichever comes first produces the one `process_exit` for that process; the
other is dropped. A shim that died without reporting is looked up in its
durable `exit.json`; with no record there, the Supervisor is told the shim
died (`shim_died`) and has what is left of the process killed.

OOM: the Worker registers the container's memory-cgroup watch before
`runc start` and hands the fd over here. Its wake-ups become `oom` messages
when the cgroup's OOM-kill count grew; the watch is dropped when the cgroup
goes away. Before an init's exit is passed on, the count is read once more,
so an `oom` always precedes the `exit` it caused.
"""

from __future__ import annotations

import collections
import logging
import os
import select
from dataclasses import dataclass
from pathlib import Path

import zmq

from actors.base import Handlers, SocketActor
from actors.cgroups import drain, oom_kills
from actors.daemonlog import log_fields
from actors.metrics.stopwatch import Stopwatch
from actors.wire import MAX_SHIM_MESSAGE, WireError, trace, unpack
from actors.wire import messages as wire
from actors.wire.records import ExitRecord, read_record

__all__ = ["Monitor"]

logger = logging.getLogger(__name__)

REMEMBERED_EXITS = 65536
"""How many reported process tokens are kept to drop late duplicate reports."""


@dataclass
class WatchedShim:
    token: str
    container_id: str
    process: str
    procdir: Path


@dataclass
class OomWatch:
    token: str
    container_id: str
    kind: str
    directory: Path
    kills: int
    signalled: bool = False


class Monitor(SocketActor):
    inbox_name = "monitor"

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], exit_clock: Stopwatch | None,
                 shim_address: str) -> None:
        super().__init__(context)
        self.reports = context.socket(zmq.PULL)
        """The shims' exit reports (`ShimExit`, one frame each)."""
        self.reports.setsockopt(zmq.MAXMSGSIZE, MAX_SHIM_MESSAGE)
        self.reports.setsockopt(zmq.LINGER, 0)
        try:
            self.reports.bind(shim_address)
        except zmq.ZMQError:
            self.reports.close()
            raise
        self.epoll = select.epoll()
        """The shims' pidfds and the OOM fds (a few per container), in one fd the inbox polls:
        zmq_poll costs O(items) on every call."""
        self.exit_clock = exit_clock
        """Started for each exit passed on; the EventLog stops it at the exit event (a metric; None
        without --metrics-address)."""
        self.shims: dict[int, WatchedShim] = {}
        self.ooms: dict[int, OomWatch] = {}
        self.oom_by_token: dict[str, int] = {}
        self.reported: set[str] = set()
        self._reported_order: collections.deque[str] = collections.deque()

    def handlers(self) -> Handlers:
        return {wire.WatchProcess: self.on_watch_process}

    def on_start(self) -> None:
        super().on_start()
        self.watch(self.reports, self._drain_reports)
        self.watch(self.epoll.fileno(), self._fds_ready)

    def on_stop(self) -> None:
        for fd in [*self.shims, *self.ooms]:
            os.close(fd)
        self.shims.clear()
        self.ooms.clear()
        self.epoll.close()
        self.reports.close(linger=0)
        super().on_stop()

    def _drain_reports(self) -> None:
        """Take every exit report waiting; a malformed one is dropped (a shim is not trusted
        to send anything but its own exit)."""
        while True:
            try:
                frames = self.reports.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                if len(frames) != 1:
                    raise WireError("a shim report is one frame")
                message = wire.decode(unpack(frames[0], limit=MAX_SHIM_MESSAGE))
                if not isinstance(message, wire.ShimExit):
                    raise WireError(f"shims may not send {message.kind}")
            except WireError as exc:
                logger.warning("bad shim report dropped: %s", exc)
                continue
            self.on_shim_exit(message)

    def _first_report(self, token: str) -> bool:
        """Mark `token` as reported; False if it already was."""
        if token in self.reported:
            return False
        self.reported.add(token)
        self._reported_order.append(token)
        if len(self._reported_order) > REMEMBERED_EXITS:
            self.reported.discard(self._reported_order.popleft())
        return True

    def _report(self, token: str, container_id: str, process: str, status: int,
                oom_kills_then: int | None = None) -> None:
        if not self._first_report(token):
            return
        if self.exit_clock is not None:
            self.exit_clock.begin(token)
        oom_fd = self.oom_by_token.get(token)
        if oom_fd is not None:
            self._check_oom(oom_fd, woken=False, reported=oom_kills_then)
        if trace.ENABLED:
            trace.stamp(token, "monitor: passed on")
        self.send("supervisor", wire.ProcessExit(token=token, container_id=container_id, process=process,
                                                 status=status))

    def on_shim_exit(self, message: wire.ShimExit) -> None:
        if trace.ENABLED:
            trace.stamp(message.token, "monitor: report")
        self._report(message.token, message.container_id, message.process, message.status, message.oom_kills)

    def on_watch_process(self, message: wire.WatchProcess) -> None:
        token = message.token
        if message.oom_fd >= 0 and message.oom_kind is not None and message.cgroup is not None:
            fd = message.oom_fd
            directory = Path(message.cgroup)
            self.ooms[fd] = OomWatch(token, message.container_id, message.oom_kind, directory, message.oom_kills)
            self.oom_by_token[token] = fd
            self.epoll.register(fd, select.EPOLLIN)
        shim = WatchedShim(token, message.container_id, message.process, Path(message.procdir))
        try:
            fd = os.pidfd_open(message.shim_pid)
        except ProcessLookupError:
            self._shim_gone(shim)
            return
        self.shims[fd] = shim
        self.epoll.register(fd, select.EPOLLIN)

    def _fds_ready(self) -> None:
        for fd, _ in self.epoll.poll(0):
            if fd in self.ooms:
                if not self._check_oom(fd) and fd in self.ooms:
                    self.epoll.unregister(fd)  # its cgroup is gone: kept, unpolled, until its exit is checked
            elif fd in self.shims:  # (not dropped earlier in this same round)
                shim = self.shims.pop(fd)
                self.epoll.unregister(fd)
                os.close(fd)
                self._shim_gone(shim)

    def _check_oom(self, fd: int, *, woken: bool = True, reported: int | None = None) -> bool:
        """Pass on an OOM kill the cgroup counted since the last check.

        Not `woken` (before an exit), cgroup v1's count is read only when its eventfd has been
        signalled since the count last grew: the kernel signals it before it kills, and counts
        the kill after. v2's inotify event comes later, from a work queue: always read.
        `reported`: the count the init's shim read after reaping it, before `runc delete` removed
        the cgroup: nothing is counted for an init after its exit, so it is the count, with no
        file read on the exit's way. Whether the cgroup was there (or not read)."""
        watch = self.ooms[fd]
        if drain(fd):
            watch.signalled = True
        if not woken and (reported is not None or (watch.kind == "v1" and not watch.signalled)):
            live = None
            kills = reported
        else:
            live = oom_kills(watch.kind, watch.directory)
            kills = reported if live is None else live
        if kills is not None and kills > watch.kills:
            watch.kills = kills
            watch.signalled = False
            logger.info("container %s: out of memory", watch.container_id,
                        extra=log_fields(container_id=watch.container_id))
            self.send("supervisor", wire.Oom(container_id=watch.container_id, token=watch.token))
        if live is None and (not woken or watch.token in self.reported):
            self._drop_oom(fd)  # gone, and checked at the exit (kept until then: its report brings the count)
        return live is not None

    def _drop_oom(self, fd: int) -> None:
        watch = self.ooms.pop(fd)
        self.oom_by_token.pop(watch.token, None)
        try:
            self.epoll.unregister(fd)
        except FileNotFoundError:
            pass  # unpolled already: its cgroup went before its exit was checked
        os.close(fd)

    def _shim_gone(self, shim: WatchedShim) -> None:
        if shim.token not in self.reported:
            record = read_record(shim.procdir / "exit.json", ExitRecord)
            if record is not None:
                self._report(shim.token, shim.container_id, shim.process, record["status"])
            elif self._first_report(shim.token):
                logger.warning("shim of %s/%s died without recording an exit", shim.container_id, shim.process,
                               extra=log_fields(container_id=shim.container_id, process=shim.process))
                self.send("supervisor", wire.ShimDied(token=shim.token, container_id=shim.container_id,
                                                      process=shim.process))
        oom_fd = self.oom_by_token.get(shim.token)
        if oom_fd is not None:
            self._drop_oom(oom_fd)
        self.send("supervisor", wire.ShimGone(token=shim.token, container_id=shim.container_id, process=shim.process))
