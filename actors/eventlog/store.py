"""The event log file and the sequence high-water mark.

The log is append-only msgpack records. A record is stored whole or not at all:
a failed or short write is cut back off the file, and the event waits in memory
(replay still serves it) until a later append or `flush` gets it on disk, in
order. A full disk therefore delays the file, never the event.

Sequence numbers are never issued twice. Each number is stored in the
high-water mark (`events.seq`) before anybody sees the event, and numbering
continues above both that mark and the log's last record: records the log lost
(a crash while the disk was full, a cut tail, damage) cannot be numbered again.

Loading skips damage instead of stopping at it: after a record that does not
decode, reading resumes at the next offset where an event numbered above the
last good one decodes. A damaged tail is cut off; damage in the middle is
logged, the damaged file is kept as `events.log.damaged` and the log rewritten
with the good records.
"""

from __future__ import annotations

import collections
import errno
import io
import logging
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack

from actors.wire import pack
from actors.wire.codec import MAX_EVENT_MESSAGE
from hostos.atomicfile import append_record, describe_os_error, write_file_atomic

__all__ = ["EventStore", "HighWaterMark"]

logger = logging.getLogger(__name__)

READ_SIZE = 4096
"""Bytes read at a time at load: small, as resynchronising tries one offset after another."""
COMPACT_RETRY = 30.0
"""Seconds before a compaction that failed (a full disk) is tried again."""
_MAP_HEADERS = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
"""First bytes of a msgpack map: where a record can start."""


class HighWaterMark:
    """The highest sequence number ever issued, in a small file rewritten in place.

    Two 16-byte slots, written alternately, each holding the number and its
    complement: a torn write spoils at most one slot, and the other still holds
    the number before. Both slots are written when the file is opened, so its
    blocks are allocated and later writes into them need no free space. No
    fsync: the state dir is a tmpfs under /run, whose pages outlive a crash of
    this process (and nothing in it outlives a reboot).
    """

    SLOT = struct.Struct("<QQ")
    MASK = (1 << 64) - 1

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self.value = self._read(os.pread(fd, 2 * self.SLOT.size, 0))
            self._write(fd, self._slot(self.value) * 2, 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _slot(self, seq: int) -> bytes:
        return self.SLOT.pack(seq, seq ^ self.MASK)

    def _read(self, data: bytes) -> int:
        """The larger number of the two slots that are intact (0 when none is)."""
        best = 0
        for start in (0, self.SLOT.size):
            chunk = data[start:start + self.SLOT.size]
            if len(chunk) == self.SLOT.size:
                seq, check = self.SLOT.unpack(chunk)
                if check == seq ^ self.MASK:
                    best = max(best, seq)
        return best

    def _write(self, fd: int, data: bytes, offset: int) -> None:
        if os.pwrite(fd, data, offset) != len(data):  # a short write: what a full disk does first
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    def advance(self, seq: int) -> None:
        """Record that `seq` has been issued; call before anybody sees it."""
        self._write(self._fd, self._slot(seq), (seq % 2) * self.SLOT.size)
        self.value = seq

    def close(self) -> None:
        os.close(self._fd)


def _is_event(record: Any, after: int) -> bool:
    return (isinstance(record, dict) and type(record.get("seq")) is int and isinstance(record.get("type"), str)
            and record["seq"] > after)


def _records(stream: io.BytesIO, offset: int, after: int) -> Iterator[tuple[dict[str, Any], int]]:
    """The events from `offset` on, each numbered above the one before (the first above
    `after`), with the offset after each; ends at the first record that is not one."""
    stream.seek(offset)
    unpacker = msgpack.Unpacker(stream, raw=False, read_size=READ_SIZE, max_buffer_size=MAX_EVENT_MESSAGE)
    try:
        for record in unpacker:
            if not _is_event(record, after):
                return
            after = record["seq"]
            yield record, offset + unpacker.tell()
    except Exception:  # damage takes any shape: out of data, bad format, unhashable keys, ...
        return


def _resync(data: bytes, stream: io.BytesIO, offset: int, after: int) -> int:
    """The first offset past `offset` where an event numbered above `after` decodes, or the end."""
    for candidate in range(offset + 1, len(data)):
        if data[candidate] in _MAP_HEADERS and next(_records(stream, candidate, after), None):
            return candidate
    return len(data)


class EventStore:
    """The last `retain` events, in memory and in a file that survives restarts."""

    def __init__(self, path: Path, retain: int, seq_path: Path) -> None:
        self.path = path
        self.retain = retain
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=retain)
        self.unwritten: collections.deque[dict[str, Any]] = collections.deque()
        """Events kept and published but not in the file yet (a full disk), oldest first."""
        self.error: str | None = None
        """Why `unwritten` is not empty (an OS error message)."""
        self.last_seq = 0
        self._records_in_file = 0
        self._compact_after = 0.0
        self._load()
        self._high_water = HighWaterMark(seq_path)
        self.last_seq = max(self.last_seq, self._high_water.value)
        self._fd = self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(fd).st_size
        return fd

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        stream = io.BytesIO(data)
        damaged: list[tuple[int, int, int]] = []
        """(first byte, end, last good seq before it) of each stretch that did not decode."""
        offset = 0
        while offset < len(data):
            for event, after in _records(stream, offset, self.last_seq):
                self.events.append(event)
                self.last_seq = event["seq"]
                self._records_in_file += 1
                offset = after
            if offset < len(data):
                end = _resync(data, stream, offset, self.last_seq)
                damaged.append((offset, end, self.last_seq))
                offset = end
        if not damaged:
            return
        if len(damaged) == 1 and damaged[0][1] == len(data):
            logger.warning("event log %s: cutting %d bytes of torn or damaged tail", self.path,
                           len(data) - damaged[0][0])
            os.truncate(self.path, damaged[0][0])
            return
        for start, end, before in damaged:
            logger.error("event log %s: bytes %d to %d after event %d are damaged and were skipped",
                         self.path, start, end, before)
        self._repair()

    def _repair(self) -> None:
        """Keep the damaged file aside and rewrite the log with the good records."""
        damaged = self.path.with_name(self.path.name + ".damaged")
        try:
            damaged.unlink(missing_ok=True)
            os.link(self.path, damaged)
            self._rewrite()
        except OSError as exc:
            logger.error("event log %s: cannot repair it (%s); the damage is skipped at each start",
                         self.path, describe_os_error(exc))
            return
        logger.error("event log %s: rewritten with the %d good events; the damaged file is kept as %s",
                     self.path, len(self.events), damaged)

    def _rewrite(self) -> None:
        """Replace the file by one holding the retained events only."""
        write_file_atomic(self.path, b"".join(pack(event) for event in self.events))
        self._records_in_file = len(self.events)

    def append(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Issue `event` (numbered `last_seq + 1`), keep it and write it after any still
        waiting; the events this got into the file, oldest first."""
        try:
            self._high_water.advance(event["seq"])
        except OSError as exc:
            logger.error("cannot store sequence number %d in %s (%s): were the log to lose it too, "
                         "a later start could issue it again", event["seq"], self._high_water.path,
                         describe_os_error(exc))
        self.events.append(event)
        self.last_seq = event["seq"]
        self.unwritten.append(event)
        return self.flush()

    def flush(self) -> list[dict[str, Any]]:
        """Write the waiting events, in order, until one fails; those written, oldest first."""
        written: list[dict[str, Any]] = []
        while self.unwritten:
            try:
                self._size = append_record(self._fd, self._size, pack(self.unwritten[0]))
            except OSError as exc:
                self.error = describe_os_error(exc)
                return written
            written.append(self.unwritten.popleft())
            self._records_in_file += 1
        self.error = None
        if self._records_in_file > 2 * self.retain and time.monotonic() >= self._compact_after:
            self._compact()
        return written

    def _compact(self) -> None:
        """Rewrite the file with the retained events only (atomically); on a full disk, keep
        appending to the old file and try again later."""
        try:
            self._rewrite()
        except OSError as exc:
            logger.warning("event log %s: cannot compact it (%s); trying again in %gs", self.path,
                           describe_os_error(exc), COMPACT_RETRY)
            self._compact_after = time.monotonic() + COMPACT_RETRY
            return
        os.close(self._fd)
        self._fd = self._open()

    def trouble(self) -> str | None:
        """Why the state dir's storage is degraded, or None: events waiting for the disk, or no space left."""
        if self.unwritten:
            return f"storage full: {len(self.unwritten)} event(s) not yet written to {self.path}: {self.error}"
        try:
            space = os.statvfs(self.path.parent)
        except OSError:
            return None
        if space.f_bfree == 0:
            return f"storage full: no space left on the state dir's filesystem ({self.path.parent})"
        return None

    @property
    def first_seq(self) -> int:
        return self.events[0]["seq"] if self.events else self.last_seq + 1

    def after(self, seq: int) -> Iterator[dict[str, Any]]:
        for event in self.events:
            if event["seq"] > seq:
                yield event

    def close(self) -> None:
        """Make a last attempt at the events still waiting, then close the files."""
        self.flush()
        if self.unwritten:
            logger.error("event log %s: %d event(s) could not be written and are lost: %s", self.path,
                         len(self.unwritten), self.error)
        os.close(self._fd)
        self._high_water.close()
