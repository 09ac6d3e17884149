"""A process's captured output: bounded, rotated files of msgpack records.

The shim appends `[stream, time, data]` records (stream 1 = stdout, 2 = stderr)
to `output.<generation>.log` in the process dir. When a file passes its size
limit the shim starts the next generation and deletes the one before the
previous, so at most two files (2 x the limit) exist. A reader keeps a cursor
`[generation, offset]`; if its generation was rotated away it continues at the
oldest one left and is told that some output was dropped.

The shim (writer) and the daemon (reader) both import this module.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["DEFAULT_LIMIT", "OutputWriter", "generations", "read_output"]

DEFAULT_LIMIT = 1 << 20
_NAME = re.compile(r"output\.(\d+)\.log\Z")


def _path(directory: Path, generation: int) -> Path:
    return directory / f"output.{generation}.log"


def generations(directory: Path) -> list[int]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


class OutputWriter:
    """Appends output records; used by the shim only."""

    def __init__(self, directory: Path, limit: int = DEFAULT_LIMIT) -> None:
        self.directory = directory
        self.limit = limit
        existing = generations(directory)
        self.generation = existing[-1] if existing else 0
        self._open()

    def _open(self) -> None:
        path = _path(self.directory, self.generation)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self._fd).st_size

    def write(self, stream: int, data: bytes) -> None:
        record = msgpack.packb([stream, time.time(), data], use_bin_type=True)
        if self.size and self.size + len(record) > self.limit:
            self._rotate()
        os.write(self._fd, record)
        self.size += len(record)

    def _rotate(self) -> None:
        os.close(self._fd)
        self.generation += 1
        _path(self.directory, self.generation - 2).unlink(missing_ok=True)
        self._open()

    def close(self) -> None:
        os.close(self._fd)


def read_output(directory: Path, cursor: list[int] | None, max_bytes: int) -> dict[str, Any]:
    """Records after `cursor` (at most about `max_bytes` of data), the next cursor, and
    `dropped` when output between the cursor and the oldest kept file was rotated away."""
    kept = generations(directory)
    generation, offset = cursor if cursor else (kept[0] if kept else 0, 0)
    dropped = False
    if kept and generation < kept[0]:
        generation, offset, dropped = kept[0], 0, True
    records: list[list[Any]] = []
    size = 0
    while True:
        path = _path(directory, generation)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                unpacker = msgpack.Unpacker(handle, raw=False, max_buffer_size=4 * DEFAULT_LIMIT + 4096)
                for record in unpacker:
                    if not (isinstance(record, list) and len(record) == 3 and isinstance(record[2], bytes)):
                        break
                    records.append(record)
                    size += len(record[2])
                    offset_now = unpacker.tell()
                    if size >= max_bytes:
                        return {"records": records, "cursor": [generation, offset + offset_now], "dropped": dropped}
                offset += unpacker.tell()
        except FileNotFoundError:
            pass
        if generation + 1 in generations(directory):
            generation, offset = generation + 1, 0
            continue
        return {"records": records, "cursor": [generation, offset], "dropped": dropped}


