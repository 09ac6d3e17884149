"""The shim's side of a CRI log (its format: actors/wire/crilog.py): lines cut from the output
as it is read, stamped and appended to the file the start named; reopened at the daemon's word.

Only a shim whose start names a CRI log runs this code (its Stdio makes a `CriLog` then), so
the others do not pay for it in pages. Like the output log, it never fails the shim: what
cannot be stored (a full disk) is counted and dropped, and once entries can be stored again a
stderr entry says how much was lost.
"""

from __future__ import annotations

import errno
import os
import time

from actors.wire.crilog import FULL, MAX_LINE, PARTIAL, STREAM_NAMES
from hostos.atomicfile import append_record, describe_os_error

__all__ = ["CriLines", "CriLog", "open_cri_log", "open_failure", "rfc3339nano"]

Entry = tuple[bytes, bytes]
"""(tag, text) of one line of the file."""


def rfc3339nano(nanoseconds: int) -> bytes:
    """A time (nanoseconds since the epoch) as Go's `time.RFC3339Nano` writes it in UTC."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    tm = time.gmtime(seconds)
    digits = (b".%09d" % fraction).rstrip(b"0") if fraction else b""
    return b"%04d-%02d-%02dT%02d:%02d:%02d%sZ" % (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                                  tm.tm_sec, digits)


class CriLines:
    """Cuts one stream's output into entries, as containerd's CRI logger does: whole lines
    (`\\n`, and a `\\r` before it, dropped) as F, longer ones in `max_line` P parts, and what an
    unterminated line already holds beyond `max_line` as P; the rest waits for more."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.pending = bytearray()
        """The start of a line whose end has not been read yet (at most `max_line` bytes)."""

    def feed(self, data: bytes) -> list[Entry]:
        """The entries `data` completes."""
        pending = self.pending
        pending += data
        entries: list[Entry] = []
        start = 0
        while (newline := pending.find(b"\n", start)) >= 0:
            end = newline - 1 if newline > start and pending[newline - 1] == 0x0D else newline
            self._cut(bytes(pending[start:end]), entries)
            start = newline + 1
        rest = bytes(pending[start:])
        while len(rest) > self.max_line:
            entries.append((PARTIAL, rest[:self.max_line]))
            rest = rest[self.max_line:]
        self.pending = bytearray(rest)
        return entries

    def _cut(self, line: bytes, entries: list[Entry]) -> None:
        while len(line) > self.max_line:
            entries.append((PARTIAL, line[:self.max_line]))
            line = line[self.max_line:]
        entries.append((FULL, line))

    def end(self) -> list[Entry]:
        """The stream ended: an unterminated last line, as P."""
        rest, self.pending = bytes(self.pending), bytearray()
        return [(PARTIAL, rest)] if rest else []


def open_cri_log(path: str) -> int:
    """Open a CRI log for appending, its parent dirs made as containerd makes them (0755, less
    the umask). A file it makes gets mode 0640 whatever the umask (actord's is 077); an existing
    one keeps its own. A symlink at `path` is refused (O_NOFOLLOW): the kubelet's file is a
    regular file, and the path must not lead the shim to write elsewhere."""
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        return os.open(path, flags)
    os.fchmod(fd, 0o640)
    return fd


def _output_bytes(entries: list[Entry]) -> int:
    """The bytes of output `entries` hold: their text and each F's newline."""
    return sum(len(text) + (tag == FULL) for tag, text in entries)


def open_failure(path: str, exc: OSError) -> str:
    """Why the CRI log at `path` cannot be opened, for the user."""
    reason = describe_os_error(exc)
    if exc.errno == errno.ELOOP:
        reason += " (a symlink there is refused)"
    return f"cannot open the CRI log {path}: {reason}"


class CriLog:
    """Appends a process's output, both streams, to its CRI log; `write` and `end` never raise."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.lines = {stream: CriLines() for stream in STREAM_NAMES}
        self.dropped = 0
        """Bytes of output dropped since the last entries stored."""
        self._drop_reason = ""

    def write(self, stream: int, data: bytes) -> None:
        """Store the entries `data` completes on `stream` (1 stdout, 2 stderr)."""
        self._store(stream, self.lines[stream].feed(data))

    def end(self, stream: int) -> None:
        """`stream` reached its end: store its unterminated last line."""
        self._store(stream, self.lines[stream].end())

    def _store(self, stream: int, entries: list[Entry]) -> None:
        if not entries:
            return
        stamp = rfc3339nano(time.time_ns())
        if self.dropped:
            marker = b"[actord: %d bytes of output dropped: %s]" % (self.dropped, self._drop_reason.encode())
            if not self._append(stamp, 2, [(FULL, marker)]):
                self.dropped += _output_bytes(entries)
                return
            self.dropped = 0
        if not self._append(stamp, stream, entries):
            self.dropped += _output_bytes(entries)

    def _append(self, stamp: bytes, stream: int, entries: list[Entry]) -> bool:
        """Append `entries` whole, or nothing (a torn line would garble the kubelet's reading)."""
        head = b"%s %s " % (stamp, STREAM_NAMES[stream])
        blob = b"".join(b"%s%s %s\n" % (head, tag, text) for tag, text in entries)
        try:
            self.size = append_record(self.fd, self.size, blob)
        except OSError as exc:
            self._drop_reason = describe_os_error(exc)
            return False
        return True

    def reopen(self) -> None:
        """Write on to a new open of the path (the kubelet renamed the file it had: a new one);
        OSError, with the old file kept, when it cannot be opened."""
        fd = open_cri_log(self.path)
        os.close(self.fd)
        self.fd, self.size = fd, os.fstat(fd).st_size

    def close(self) -> None:
        os.close(self.fd)
