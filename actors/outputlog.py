"""A process's captured output: bounded, rotated files of msgpack records.

The shim appends `[stream, time, data]` records (stream 1 = stdout, 2 = stderr)
to `output.<generation>.log` in the process dir. When a file passes its size
limit the shim starts the next generation and deletes the one before the
previous, so at most two files (2 x the limit) exist. A reader keeps a cursor
`[generation, offset]`; if its generation was rotated away it continues at the
oldest one left and is told that some output was dropped.

The writer never fails the shim: output that cannot be stored (a full disk) is
counted and dropped, and once records can be stored again a stderr record says
how much was lost.

The shim (writer) and the daemon (reader) both import this module. Paths are
handled with os.path, not pathlib: in a shim, every library function run after the
fork costs pages it would otherwise share with the spawner.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

import msgpack

from hostos.atomicfile import append_record, describe_os_error, remove_file

__all__ = ["DEFAULT_LIMIT", "CursorError", "OutputWriter", "generations", "read_output"]

DEFAULT_LIMIT = 1 << 20
"""Bytes of captured output per file (two are kept per process), unless `actord start --log-limit`."""
_NAME = re.compile(r"output\.(\d+)\.log\Z")


def _path(directory: str | os.PathLike[str], generation: int) -> str:
    return os.path.join(directory, f"output.{generation}.log")


def generations(directory: str | os.PathLike[str]) -> list[int]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


class CursorError(ValueError):
    """A reader's cursor that points past the output there is."""


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
        fd = os.open(_path(self.directory, generation), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return fd, os.fstat(fd).st_size

    def write(self, stream: int, data: bytes) -> None:
        """Store `data`, after a marker for any output dropped before it; drop it if it cannot be stored."""
        if self.dropped:
            marker = f"[actord: {self.dropped} bytes of output dropped: {self._drop_reason}]\n".encode()
            if not self._append(2, marker):
                self.dropped += len(data)
                return
            self.dropped = 0
        if not self._append(stream, data):
            self.dropped += len(data)

    def _append(self, stream: int, data: bytes) -> bool:
        record = msgpack.packb([stream, time.time(), data], use_bin_type=True)
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
        remove_file(_path(self.directory, self.generation - 1))
        fd, size = self._open(self.generation + 1)
        os.close(self.fd)
        self.fd, self.size = fd, size
        self.generation += 1

    def close(self) -> None:
        os.close(self.fd)


def _check_cursor(directory: str | os.PathLike[str], kept: list[int], generation: int, offset: int) -> None:
    """Raise CursorError for a cursor no reader was given: a file or offset not written yet."""
    newest = kept[-1] if kept else 0
    if generation > newest:
        raise CursorError(f"cursor generation {generation} is past the newest output file ({newest})")
    try:
        size = os.stat(_path(directory, generation)).st_size
    except FileNotFoundError:
        if generation < newest:
            return  # rotated away meanwhile: reading goes on at the next file
        size = 0
    if offset > size:
        raise CursorError(f"cursor offset {offset} is past the end of output file {generation} ({size} bytes)")


def read_output(directory: str | os.PathLike[str], cursor: list[int] | None, max_bytes: int) -> dict[str, Any]:
    """Records after `cursor` (at most about `max_bytes` of data), the next cursor, and
    `dropped` when output between the cursor and the oldest kept file was rotated away.
    CursorError for a cursor past the output written so far."""
    kept = generations(directory)
    generation, offset = cursor if cursor else (kept[0] if kept else 0, 0)
    dropped = False
    if kept and generation < kept[0]:
        generation, offset, dropped = kept[0], 0, True
    elif cursor:
        _check_cursor(directory, kept, generation, offset)
    records: list[list[Any]] = []
    size = 0
    while True:
        path = _path(directory, generation)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                unpacker = msgpack.Unpacker(handle, raw=False, max_buffer_size=4 * DEFAULT_LIMIT + 4096)
                # bytes of whole objects read; not `tell()` at the end, which also counts the part
                # read so far of a record still being written (or about to be cut back on a full disk)
                consumed = 0
                for record in unpacker:
                    consumed = unpacker.tell()
                    if not (isinstance(record, list) and len(record) == 3 and isinstance(record[2], bytes)):
                        break
                    records.append(record)
                    size += len(record[2])
                    if size >= max_bytes:
                        return {"records": records, "cursor": [generation, offset + consumed], "dropped": dropped}
                offset += consumed
        except FileNotFoundError:
            pass
        if generation + 1 in generations(directory):
            generation, offset = generation + 1, 0
            continue
        return {"records": records, "cursor": [generation, offset], "dropped": dropped}


