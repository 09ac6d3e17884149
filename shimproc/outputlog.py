"""The shim's side of a process's captured output: the writer of the rotated output files
(their format: actors/wire/outputlog.py).

The writer never fails the shim: output that cannot be stored (a full disk) is counted and
dropped, and once records can be stored again a stderr record says how much was lost.
"""

from __future__ import annotations

import os
import time

from actors.wire.outputlog import DEFAULT_LIMIT, STDERR, generations, output_file, pack_record
from hostos.atomicfile import append_record, describe_os_error, remove_file

__all__ = ["OutputWriter"]


class OutputWriter:
    """Appends output records; used by the shim only. `write` never raises."""

    def __init__(self, directory: str | os.PathLike[str], limit: int = DEFAULT_LIMIT,
                 opened: tuple[int, int, int] | None = None) -> None:
        """Append to the newest file in `directory` (made if there is none); `opened` is that
        file's (fd, generation, size) when another process found and opened it (the shim's
        helper: the shim then runs none of that code)."""
        self.directory = directory
        self.limit = limit
        if opened is None:
            existing = generations(directory)
            self.generation = existing[-1] if existing else 0
            self.fd, self.size = self._open(self.generation)
        else:
            self.fd, self.generation, self.size = opened
        self.dropped = 0
        """Bytes of output dropped since the last record stored."""
        self._drop_reason = ""

    def _open(self, generation: int) -> tuple[int, int]:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(output_file(self.directory, generation), flags, 0o600)
        return fd, os.fstat(fd).st_size

    def write(self, stream: int, data: bytes) -> None:
        """Store `data`, after a marker for any output dropped before it; drop it if it cannot be stored."""
        if self.dropped:
            marker = f"[actord: {self.dropped} bytes of output dropped: {self._drop_reason}]\n".encode()
            if not self._append(STDERR, marker):
                self.dropped += len(data)
                return
            self.dropped = 0
        if not self._append(stream, data):
            self.dropped += len(data)

    def _append(self, stream: int, data: bytes) -> bool:
        record = pack_record(stream, time.time(), data)
        try:
            if self.size and self.size + len(record) > self.limit:
                self._rotate()
            self.size = append_record(self.fd, self.size, record)
        except OSError as exc:
            self._drop_reason = describe_os_error(exc)
            return False
        return True

    def _rotate(self) -> None:
        """Start the next generation, deleting the one before the current one first (on a
        full disk that makes room). If the new file cannot be made, the current one stays."""
        remove_file(output_file(self.directory, self.generation - 1))
        fd, size = self._open(self.generation + 1)
        os.close(self.fd)
        self.fd, self.size = fd, size
        self.generation += 1

    def close(self) -> None:
        os.close(self.fd)
