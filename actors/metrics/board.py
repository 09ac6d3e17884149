"""The containers as the Supervisor last showed them: what a scrape reads instead of asking it.

The Supervisor owns the container records and changes them one message at a time; a
scrape runs in the HTTP server's threads. So the Supervisor puts a small frozen view of
each container it changed on this board (`actors/supervisor/probe.py`), and a scrape
copies the board: it never waits for the Supervisor, and the Supervisor never waits for a
scrape longer than one dict copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["STATUSES", "ContainerBoard", "ContainerView"]

STATUSES = ("parked", "starting", "running", "paused", "stopping", "restarting", "stopped")
"""The statuses a container on the board can have (as clients see them where they see it)."""


@dataclass(frozen=True)
class ContainerView:
    """What a scrape needs of one container."""

    id: str
    status: str
    pid: int
    """Its init's pid on the host while the init runs; 0 before it starts and after it exits."""
    started: int | None
    """That pid's start time: tells the init from a later process given the same pid."""


class ContainerBoard:
    """id -> view of every container the Supervisor has (parked, starting, listed, stopping, kept by a
    restart policy)."""

    def __init__(self) -> None:
        self._views: dict[str, ContainerView] = {}
        self._lock = threading.Lock()

    def put(self, container_id: str, view: ContainerView | None) -> None:
        """The container's view now (None: it is gone). Called by the Supervisor only."""
        if self._views.get(container_id) == view:  # the only writer may read without the lock
            return
        with self._lock:
            if view is None:
                self._views.pop(container_id, None)
            else:
                self._views[container_id] = view

    def replace(self, views: Iterable[ContainerView]) -> None:
        """Every container at once (after a restore)."""
        fresh = {view.id: view for view in views}
        with self._lock:
            self._views = fresh

    def snapshot(self) -> tuple[ContainerView, ...]:
        with self._lock:
            return tuple(self._views.values())
