"""Every metric actord keeps, in one registry: what the actors count as they work, and the
collectors that read the rest when `/metrics` is scraped.

Counters never carry a container id (a series per container would outlive it for the
daemon's whole life); per-container numbers are read on scrape, for the containers there are.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from actors.metrics.board import ContainerBoard
from actors.metrics.collector import CgroupReader, ContainerCollector
from actors.metrics.stopwatch import Stopwatch
from actors.wire.events import UNKNOWN_STATUS, EventRecord

__all__ = ["PROCESS_KINDS", "STATUS_CLASSES", "Metrics", "status_class"]

STATUS_CLASSES = ("ok", "error", "signal", "unknown")
PROCESS_KINDS = ("init", "exec")

START_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a start runs a shim, `runc create` and `runc start` (about 0.1 s on an idle host)."""
EXIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: an exit crosses a few actors and one file append."""


def status_class(status: int | None) -> str:
    """The class of an exit status, the label of the exit counter:

    `ok` 0; `signal` 129 to 128 + SIGRTMAX (128 + the signal that ended it, 137 for KILL);
    `unknown` 255 (actord's status for a process found gone with no status recorded; a process
    that exits 255 itself is counted there too); `error` any other."""
    if status is None or status == UNKNOWN_STATUS:
        return "unknown"
    if status == 0:
        return "ok"
    if 128 < status <= 128 + signal.SIGRTMAX:
        return "signal"
    return "error"


def process_kind(name: str | None) -> str:
    return "init" if name == "init" else "exec"


class Metrics:
    """The registry and its instruments; actors feed it, the HTTP server's threads read it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.board = ContainerBoard()
        self.start_clock = Stopwatch()
        """Container id -> when its start request came in (begun by the Supervisor, ended by the EventLog)."""
        self.exit_clock = Stopwatch()
        """Process token -> when its exit reached the Monitor (ended by the EventLog)."""

        self.container_starts = Counter(
            "actord_container_starts", "Containers started (start-container events, restarts included).",
            registry=registry)
        self.container_start_failures = Counter(
            "actord_container_start_failures", "Container starts that failed in the runtime (nothing of them runs).",
            registry=registry)
        self.execs = Counter("actord_execs", "Processes started in running containers (start-process events).",
                             registry=registry)
        self.exec_failures = Counter("actord_exec_failures", "Execs that failed to start.", registry=registry)
        self.exits = Counter(
            "actord_process_exits",
            "Process exits (exit events), by process (init: the container's own, exec: another) and status "
            "class (ok: 0, signal: 128+N, unknown: 255, error: any other).",
            ["process", "status_class"], registry=registry)
        for kind in PROCESS_KINDS:
            for status in STATUS_CLASSES:
                self.exits.labels(kind, status)
        self.oom_kills = Counter("actord_oom_kills", "OOM kills in containers' memory cgroups (oom events).",
                                 registry=registry)
        self.restarts = Counter("actord_container_restarts", "Containers restarted by their policy (restart events).",
                                registry=registry)

        self.start_seconds = Histogram(
            "actord_container_start_seconds",
            "From a containers.start request's arrival to its start-container event, recorded and published.",
            buckets=START_BUCKETS, registry=registry)
        self.exit_event_seconds = Histogram(
            "actord_exit_event_seconds",
            "From a process's exit reaching the daemon (its shim's report, or its exit record once the shim is "
            "gone) to its exit event, recorded and published. An init's exit waits for its container's other "
            "processes.",
            buckets=EXIT_BUCKETS, registry=registry)

        self.last_seq = Gauge("actord_event_last_seq", "The sequence number of the last event issued.",
                              registry=registry)
        self.subscribers = Gauge("actord_event_subscribers", "Connections to the event socket.", registry=registry)
        self.workers = Gauge("actord_workers", "Workers in the pool (--workers).", registry=registry)
        self.workers_busy = Gauge("actord_workers_busy", "Workers running a task.", registry=registry)
        self.tasks_queued = Gauge("actord_worker_tasks_queued", "Tasks waiting for a free worker.",
                                  registry=registry)

        ProcessCollector(registry=registry)
        registry.register(ContainerCollector(self.board, CgroupReader()))

    def count_subscribers(self, read: Callable[[], int]) -> None:
        """Read the number of event subscribers with `read` on each scrape."""
        self.subscribers.set_function(read)

    def recorded(self, event: EventRecord) -> None:
        """An event numbered, recorded and handed to the publisher (the EventLog calls this)."""
        self.last_seq.set(event["seq"])
        kind: str = event["type"]
        if kind == "start-container":
            self.container_starts.inc()
            elapsed = self.start_clock.end(event["id"])
            if elapsed is not None:
                self.start_seconds.observe(elapsed)
        elif kind == "start-process":
            self.execs.inc()
        elif kind == "exit":
            self.exits.labels(process_kind(event["pid"]), status_class(event["status"])).inc()
            token = event.get("token")
            elapsed = None if token is None else self.exit_clock.end(token)
            if elapsed is not None:
                self.exit_event_seconds.observe(elapsed)
        elif kind == "oom":
            self.oom_kills.inc()
        elif kind == "restart":
            self.restarts.inc()
