"""The ready-worker queue: a task goes to a free worker or waits, never blocking the Supervisor."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

from actors.wire.messages import ExecTask, RuntimeTask, StartTask

__all__ = ["Task", "WorkerPool"]

Task = StartTask | ExecTask | RuntimeTask


class WorkerPool:
    """Tracks which workers are free; queues tasks while all are busy."""

    def __init__(self, names: list[str], send: Callable[[str, Task], None]) -> None:
        self._idle: collections.deque[str] = collections.deque(names)
        self._waiting: collections.deque[Task] = collections.deque()
        self._send = send
        self.size = len(names)

    @property
    def busy(self) -> int:
        """Workers running a task."""
        return self.size - len(self._idle)

    @property
    def queued(self) -> int:
        """Tasks waiting for a free worker."""
        return len(self._waiting)

    def submit(self, task: Task) -> None:
        """Send the task to a free worker now, or queue it for the next one that frees up."""
        if self._idle:
            self._dispatch(self._idle.popleft(), task)
        else:
            self._waiting.append(task)

    def done(self, worker: str) -> None:
        """`worker` finished its task: give it the next one, or mark it free."""
        if self._waiting:
            self._dispatch(worker, self._waiting.popleft())
        else:
            self._idle.append(worker)

    def _dispatch(self, worker: str, task: Task) -> None:
        self._send(worker, dataclasses.replace(task, worker=worker))
