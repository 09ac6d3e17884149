"""Latencies that begin in one actor and end in another: a start time kept per key."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

__all__ = ["Stopwatch"]


class Stopwatch:
    """Start times by key (a container id, a process token), shared by the threads of two actors.

    Bounded: a key whose end never comes (a report the Supervisor dropped as a duplicate) is
    forgotten once `capacity` newer keys have begun, so nothing grows without limit.
    """

    def __init__(self, capacity: int = 65536, clock: Callable[[], float] = time.monotonic) -> None:
        """`clock`: seconds that only grow (tests hand in their own, so no result rests on the machine's)."""
        self._began: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()

    def begin(self, key: str, at: float | None = None) -> None:
        """`key` began at `at` (seconds of the clock; default now). The first beginning counts."""
        when = self._clock() if at is None else at
        with self._lock:
            if key in self._began:
                return
            self._began[key] = when
            while len(self._began) > self._capacity:
                self._began.popitem(last=False)

    def end(self, key: str) -> float | None:
        """Seconds since `key` began; None if it never did (or was cancelled, or forgotten)."""
        now = self._clock()
        with self._lock:
            began = self._began.pop(key, None)
        return None if began is None else max(0.0, now - began)

    def cancel(self, key: str) -> None:
        with self._lock:
            self._began.pop(key, None)

    def __len__(self) -> int:
        return len(self._began)
