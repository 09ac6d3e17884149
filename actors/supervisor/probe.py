"""What the Supervisor shows the metrics (`actors/metrics/`), around each message it handles.

Before: which container the message concerns, and what a start request or a failed start
was. After: that container's view on the board, the start clock, the failure counters and the
worker pool's load. O(1) per message, whatever the number of containers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from actors.metrics.board import ContainerView
from actors.metrics.registry import Metrics
from actors.supervisor.lifecycle import Lifecycle
from actors.supervisor.phases import Container, ProcessPhase
from actors.supervisor.pool import WorkerPool
from actors.wire.messages import Message, Request, StartDone

__all__ = ["Concern", "SupervisorProbe", "concerned_container", "view_of"]

logger = logging.getLogger(__name__)


def view_of(container: Container) -> ContainerView:
    """The container as a scrape sees it: its status, and its init's pid while the init runs."""
    init = container.processes.get("init")
    status = container.status
    if init is None or init.phase is not ProcessPhase.RUNNING:
        return ContainerView(id=container.id, status=status, pid=0, started=None)
    return ContainerView(id=container.id, status=status, pid=init.system_pid, started=init.system_start)


@dataclass(frozen=True)
class Concern:
    container_id: str
    start_received: float | None = None
    """When a containers.start of an id not in use arrived (monotonic seconds)."""
    failed_process: str | None = None
    """The name of the process whose start failed, by this message."""


def concerned_container(message: Message, life: Lifecycle) -> str | None:
    """The id of the container a Supervisor message may change: named by the message, or by
    the process its token names."""
    if isinstance(message, Request):
        value = message.params.get("id")
        return value if isinstance(value, str) else None
    container_id = getattr(message, "container_id", None)
    if isinstance(container_id, str):
        return container_id
    token = getattr(message, "token", None)
    process = life.processes.get(token) if isinstance(token, str) else None
    return None if process is None else process.container_id


class SupervisorProbe:
    def __init__(self, metrics: Metrics, life: Lifecycle, pool: WorkerPool) -> None:
        self.metrics = metrics
        self.life = life
        self.pool = pool
        self._load = (-1, -1)
        metrics.workers.set(pool.size)

    def before(self, message: Message) -> Concern | None:
        """What `message` concerns; never raises (a metric must not cost the Supervisor a message)."""
        try:
            return self._concern(message)
        except Exception:
            logger.exception("metrics: cannot follow %s", getattr(message, "kind", message))
            return None

    def after(self, concern: Concern | None) -> None:
        """Show what the message changed; never raises."""
        try:
            self._show(concern)
        except Exception:
            logger.exception("metrics: cannot show a change")

    def _concern(self, message: Message) -> Concern | None:
        container_id = concerned_container(message, self.life)
        if container_id is None:
            return None
        if isinstance(message, Request):
            fresh = message.method == "containers.start" and container_id not in self.life.containers
            return Concern(container_id, start_received=time.monotonic() if fresh else None)
        if isinstance(message, StartDone) and not message.ok:
            process = self.life.processes.get(message.token)
            return Concern(container_id, failed_process=None if process is None else process.name)
        return Concern(container_id)

    def _show(self, concern: Concern | None) -> None:
        self.show_load()
        if concern is None:
            return
        container = self.life.containers.get(concern.container_id)
        if concern.start_received is not None and container is not None:
            self.metrics.start_clock.begin(container.id, concern.start_received)
        if concern.failed_process == "init":
            self.metrics.container_start_failures.inc()
            self.metrics.start_clock.cancel(concern.container_id)
        elif concern.failed_process is not None:
            self.metrics.exec_failures.inc()
        self.metrics.board.put(concern.container_id, None if container is None else view_of(container))

    def show_all(self) -> None:
        """Every container and the pool's load at once (after a restore); never raises."""
        try:
            self.metrics.board.replace(view_of(container) for container in self.life.containers.values())
            self.show_load()
        except Exception:
            logger.exception("metrics: cannot show the containers")

    def show_load(self) -> None:
        load = (self.pool.busy, self.pool.queued)
        if load != self._load:
            self._load = load
            self.metrics.workers_busy.set(load[0])
            self.metrics.tasks_queued.set(load[1])
