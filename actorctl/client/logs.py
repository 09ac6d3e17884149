"""A process's captured output as an iterator, read page by page with `containers.logs`' cursor.

The daemon pages output by a cursor `[generation, offset]`; each record is `[stream, time, data]`.
Selecting by time (`since`, `until`) and keeping the last `tail` records is done here, on the
client side, so it works with any daemon that has `containers.logs`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from actorctl.client.transport import Transport
from actorctl.client.types import LogRecord

__all__ = ["LogStream"]

POLL_INTERVAL = 0.1
"""Seconds between reads while following a process that has nothing new to say."""


class LogStream(Iterator[LogRecord]):
    """The output records of one process, oldest first (see `Client.logs`); the one reader of
    `containers.logs`, which `actorctl containers logs` and `--attach` read through too.

    After the iteration, `status` is the process's exit status if it had exited by the end
    (always so when a follow ended by the process's exit). `dropped` becomes true when output
    was rotated away before this stream read it (the daemon keeps two files of `--log-limit`
    bytes per process, and this stream's reading fell behind the oldest): records are missing
    between the last one read and the next. A reader that reports it may set it back to
    False, to notice the next time. `cursor` is where the reading is (after the last page
    read): give it to `Client.logs(cursor=...)` to go on from there with another stream.
    """

    def __init__(self, transport: Transport, container_id: str, process: str, *, follow: bool,
                 since: float | None, until: float | None, tail: int | None, cursor: Sequence[int] | None = None,
                 poll_interval: float = POLL_INTERVAL, idle: Callable[[], None] | None = None) -> None:
        self.status: int | None = None
        self.dropped = False
        self.cursor: list[int] | None = None if cursor is None else list(cursor)
        self._transport = transport
        self._target = {"id": container_id, "pid": process}
        self._follow = follow
        self._since = since
        self._until = until
        self._tail = tail
        self._poll_interval = poll_interval
        self._idle = idle
        self._records = self._generate()

    def __next__(self) -> LogRecord:
        return next(self._records)

    def _page(self) -> list[LogRecord]:
        page: dict[str, Any] = self._transport.call("containers.logs", {**self._target, "cursor": self.cursor})
        self.dropped = self.dropped or bool(page.get("dropped"))
        self.cursor = page["cursor"]
        self.status = page.get("status")
        return [LogRecord(stream, timestamp, data) for stream, timestamp, data in page["records"]]

    def _selected(self, record: LogRecord) -> bool:
        return self._since is None or record.timestamp >= self._since

    def _past_until(self, record: LogRecord) -> bool:
        return self._until is not None and record.timestamp > self._until

    def _generate(self) -> Iterator[LogRecord]:
        if self._tail is not None:  # everything there is now, to keep the last `tail` records
            last: deque[LogRecord] = deque(maxlen=self._tail)
            while page := self._page():
                last.extend(r for r in page if self._selected(r) and not self._past_until(r))
                if any(self._past_until(r) for r in page):
                    yield from last
                    return
            yield from last
        while True:
            page = self._page()
            for record in page:
                if self._past_until(record):
                    return  # records come in time order: none after this one is wanted
                if self._selected(record):
                    yield record
            if not page:
                if not self._follow or self.status is not None:
                    return
                if self._until is not None and time.time() > self._until:
                    return  # records are stamped when captured: any still to come is later
                if self._idle is not None:
                    self._idle()
                time.sleep(self._poll_interval)
