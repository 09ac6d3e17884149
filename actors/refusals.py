"""Warnings about refused connections that an attack cannot turn into a flood of log lines."""

from __future__ import annotations

import logging

__all__ = ["RefusalReport"]

REPORT_INTERVAL = 60.0
"""Seconds between two warnings of one listener."""


class RefusalReport:
    """Counts the connections a listener refused and warns at the first one, then at most once
    per `interval` seconds with the number refused meanwhile."""

    def __init__(self, logger: logging.Logger, reason: str, interval: float = REPORT_INTERVAL) -> None:
        self.logger = logger
        self.reason = reason
        """What was full, in words: the start of each warning."""
        self.interval = interval
        self.unreported = 0
        self._reported_at: float | None = None

    def refused(self, now: float) -> None:
        """One more connection refused at `now` (time.monotonic())."""
        self.unreported += 1
        if self._reported_at is None or now - self._reported_at >= self.interval:
            self.logger.warning("%s: %d connection(s) closed at once since the last warning", self.reason,
                                self.unreported)
            self._reported_at = now
            self.unreported = 0
