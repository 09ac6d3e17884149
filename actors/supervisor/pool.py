"""The ready-worker queue: a task goes to a free worker or waits, never blocking the Supervisor."""

from __future__ import annotations

import collections
from typing import Any, Callable

__all__ = ["WorkerPool"]


class WorkerPool:
    """Tracks which workers are free; queues tasks while all are busy."""

    def __init__(self, names: list[str], send: Callable[[str, str, dict[str, Any]], None]) -> None:
        self._idle: collections.deque[str] = collections.deque(names)
        self._waiting: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._send = send

    def submit(self, message_type: str, members: dict[str, Any]) -> None:
        """Send the task to a free worker now, or queue it for the next one that frees up."""
        if self._idle:
            self._dispatch(self._idle.popleft(), message_type, members)
        else:
            self._waiting.append((message_type, members))

    def done(self, worker: str) -> None:
        """`worker` finished its task: give it the next one, or mark it free."""
        if self._waiting:
            message_type, members = self._waiting.popleft()
            self._dispatch(worker, message_type, members)
        else:
            self._idle.append(worker)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def _dispatch(self, worker: str, message_type: str, members: dict[str, Any]) -> None:
        self._send(worker, message_type, {**members, "worker": worker})
