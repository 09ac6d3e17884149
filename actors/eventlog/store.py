"""The event log file: append-only msgpack records, a torn tail cut off at load."""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import msgpack

from actors.wire import pack

__all__ = ["EventStore"]

logger = logging.getLogger(__name__)


class EventStore:
    """The last `retain` events, in memory and in a file that survives restarts."""

    def __init__(self, path: Path, retain: int) -> None:
        self.path = path
        self.retain = retain
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=retain)
        self.last_seq = 0
        self._records_in_file = 0
        self._load()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _load(self) -> None:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return
        with handle:
            unpacker = msgpack.Unpacker(handle, raw=False, max_buffer_size=1 << 20)
            good = 0
            try:
                for record in unpacker:
                    if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                        break
                    if record["seq"] <= self.last_seq:
                        break
                    self.events.append(record)
                    self.last_seq = record["seq"]
                    self._records_in_file += 1
                    good = unpacker.tell()
            except Exception as exc:
                logger.warning("event log damaged after byte %d (%s)", good, type(exc).__name__)
            size = os.fstat(handle.fileno()).st_size
        if good < size:
            logger.warning("event log: cutting %d bytes of torn or damaged tail", size - good)
            os.truncate(self.path, good)

    def append(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.last_seq = event["seq"]
        os.write(self._fd, pack(event))
        self._records_in_file += 1
        if self._records_in_file > 2 * self.retain:
            self._compact()

    def _compact(self) -> None:
        """Rewrite the file with the retained events only (atomically)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            for event in self.events:
                out.write(pack(event))
            out.flush()
            os.fsync(out.fileno())
        os.rename(tmp, self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._records_in_file = len(self.events)

    @property
    def first_seq(self) -> int:
        return self.events[0]["seq"] if self.events else self.last_seq + 1

    def after(self, seq: int) -> Iterator[dict[str, Any]]:
        for event in self.events:
            if event["seq"] > seq:
                yield event

    def close(self) -> None:
        os.close(self._fd)
