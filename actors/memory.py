"""Giving freed memory back to the system once the daemon has shrunk.

A daemon that carried thousands of containers holds their freed records in its
heap; glibc keeps freed pages unless asked. When the number of containers has
halved since its peak, a collection and `malloc_trim` return what is free, so
the daemon's RSS follows its load down instead of staying at its high-water mark.
"""

from __future__ import annotations

import gc
import logging

from hostos.libc import LIBC

__all__ = ["HeapReturn"]

logger = logging.getLogger(__name__)

SMALLEST_PEAK = 64
"""Below this many containers there is too little to return to be worth a collection: a full
collection holds the GIL for milliseconds, which every thread of the daemon (the bus publishing
the very exit that triggered it) would wait for."""


class HeapReturn:
    """Tracks the number of containers and trims the heap when it halves from its peak."""

    def __init__(self) -> None:
        self.peak = 0

    def grew(self, count: int) -> None:
        self.peak = max(self.peak, count)

    def shrank(self, count: int) -> None:
        if count <= self.peak // 2 and self.peak >= SMALLEST_PEAK:
            gc.collect()
            LIBC.malloc_trim(0)
            logger.debug("heap trimmed: %d containers, down from %d", count, self.peak)
            self.peak = count
