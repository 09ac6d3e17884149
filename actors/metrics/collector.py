"""The per-container gauges, read from the containers' cgroups when `/metrics` is scraped.

Runs in the HTTP server's threads, outside every actor: it reads the Supervisor's board
(`board.py`) and the cgroup files, never asks an actor anything. A container that exits
between the board's copy and the reading of its cgroup is left out of that scrape.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actors.cgroups import CgroupUsage, cgroup_dirs, read_usage
from actors.metrics.board import STATUSES, ContainerBoard, ContainerView
from hostos.procinfo import same_process

__all__ = ["CgroupReader", "ContainerCollector", "container_families"]

UsageReader = Callable[[ContainerView], CgroupUsage | None]


def container_families(views: Sequence[ContainerView], read: UsageReader) -> list[Metric]:
    """The container gauges of one scrape: containers by status, and the cgroup numbers of each
    container whose init runs (as `read` finds them; None: it is gone, left out)."""
    by_status = GaugeMetricFamily("actord_containers", "Containers, by status.", labels=["status"])
    counts = collections.Counter(view.status for view in views)
    for status in sorted(set(STATUSES) | set(counts)):
        by_status.add_metric([status], counts[status])
    memory = GaugeMetricFamily("actord_container_memory_usage_bytes",
                               "Memory the container's cgroup uses (page cache included).", labels=["id"])
    limit = GaugeMetricFamily("actord_container_memory_limit_bytes",
                              "The container's memory limit (absent when it has none).", labels=["id"])
    cpu = CounterMetricFamily("actord_container_cpu_seconds", "CPU time the container's processes used.",
                              labels=["id"])
    pids = GaugeMetricFamily("actord_container_pids", "Processes (and threads) in the container.", labels=["id"])
    for view in sorted(views, key=lambda v: v.id):
        if view.pid <= 0:
            continue
        usage = read(view)
        if usage is None:
            continue
        memory.add_metric([view.id], usage.memory_bytes)
        if usage.memory_limit_bytes is not None:
            limit.add_metric([view.id], usage.memory_limit_bytes)
        if usage.cpu_seconds is not None:
            cpu.add_metric([view.id], usage.cpu_seconds)
        if usage.pids is not None:
            pids.add_metric([view.id], usage.pids)
    return [by_status, memory, limit, cpu, pids]


class CgroupReader:
    """Reads a container's cgroups; where they are is looked up once per container (its init's
    /proc entry and the mount table) and kept while the container is on the board."""

    def __init__(self) -> None:
        self._dirs: dict[tuple[str, int, int | None], dict[str, Path]] = {}
        self._lock = threading.Lock()  # scrapes may run at once

    def __call__(self, view: ContainerView) -> CgroupUsage | None:
        key = (view.id, view.pid, view.started)
        with self._lock:
            dirs = self._dirs.get(key)
        if dirs is None:
            try:
                dirs = cgroup_dirs(view.pid)
            except (OSError, ValueError):
                return None
            if not same_process(view.pid, view.started):  # checked after: the dirs were the init's
                return None
            with self._lock:
                self._dirs[key] = dirs
        return read_usage(dirs)

    def keep_only(self, views: Iterable[ContainerView]) -> None:
        """Forget the cgroups of containers no longer on the board."""
        current = {(view.id, view.pid, view.started) for view in views}
        with self._lock:
            for key in [key for key in self._dirs if key not in current]:
                del self._dirs[key]


class ContainerCollector(Collector):
    def __init__(self, board: ContainerBoard, reader: CgroupReader) -> None:
        self._board = board
        self._reader = reader

    def collect(self) -> Iterable[Metric]:
        views = self._board.snapshot()
        families = container_families(views, self._reader)
        self._reader.keep_only(views)
        return families
