"""The Monitor actor.

Exits: two sources tell us a process is gone, the shim's exit report (fast
path) and the shim's own death, seen through a pidfd polled by the bus.
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
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import zmq

from actors.base import BusActor, Handlers
from actors.cgroups import drain, oom_kills
from actors.daemonlog import log_fields
from actors.metrics.stopwatch import Stopwatch
from actors.wire import messages as wire
from actors.wire import trace
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
    key: int


@dataclass
class OomWatch:
    token: str
    container_id: str
    kind: str
    directory: Path
    kills: int
    key: int
    signalled: bool = False


class Monitor(BusActor):
    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], exit_clock: Stopwatch | None) -> None:
        super().__init__(context)
        self.exit_clock = exit_clock
        """Started for each exit passed on; the EventLog stops it at the exit event (a metric; None
        without --metrics-address)."""
        self.shims: dict[int, WatchedShim] = {}
        self.ooms: dict[int, OomWatch] = {}
        self.oom_by_token: dict[str, int] = {}
        self.reported: set[str] = set()
        self._reported_order: collections.deque[str] = collections.deque()
        self._keys = itertools.count(1)

    def handlers(self) -> Handlers:
        return {wire.ShimExit: self.on_shim_exit, wire.WatchProcess: self.on_watch_process,
                wire.FdReady: self.on_fd_ready}

    def on_stop(self) -> None:
        for fd in [*self.shims, *self.ooms]:
            os.close(fd)
        self.shims.clear()
        self.ooms.clear()
        super().on_stop()

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
            watch = OomWatch(token, message.container_id, message.oom_kind, directory,
                             message.oom_kills, next(self._keys))
            self.ooms[fd] = watch
            self.oom_by_token[token] = fd
            self.send("bus", wire.WatchFd(fd=fd, key=watch.key))
        shim = WatchedShim(token, message.container_id, message.process, Path(message.procdir), next(self._keys))
        try:
            fd = os.pidfd_open(message.shim_pid)
        except ProcessLookupError:
            self._shim_gone(shim)
            return
        self.shims[fd] = shim
        self.send("bus", wire.WatchFd(fd=fd, key=shim.key))

    def on_fd_ready(self, message: wire.FdReady) -> None:
        fd, key = message.fd, message.key
        oom = self.ooms.get(fd)
        if oom is not None and oom.key == key:
            if self._check_oom(fd) and fd in self.ooms:
                self.send("bus", wire.WatchFd(fd=fd, key=key))
            return
        shim = self.shims.get(fd)
        if shim is None or shim.key != key:
            return  # a late report about an fd number since reused
        del self.shims[fd]
        os.close(fd)  # the bus no longer polls it: a watch is armed once
        self._shim_gone(shim)

    def _check_oom(self, fd: int, *, woken: bool = True, reported: int | None = None) -> bool:
        """Pass on an OOM kill the cgroup counted since the last check.

        Not `woken` (before an exit), cgroup v1's count is read only when its eventfd has been
        signalled since the count last grew: the kernel signals it before it kills, and counts
        the kill after. v2's inotify event comes later, from a work queue: always read.
        `reported`: the count the init's shim read at its exit, before `runc delete` removed the
        cgroup; it stands in when the cgroup is gone by the time we read. Whether the cgroup was
        there (or not read)."""
        watch = self.ooms[fd]
        if drain(fd):
            watch.signalled = True
        if not woken and watch.kind == "v1" and not watch.signalled and reported is None:
            return True
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
        self.send("bus", wire.ForgetFd(fd=fd))

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
