"""The daemon's side of a process's captured output: reading the rotated output files its shim
writes (their format: actors/wire/outputlog.py).

A reader keeps a cursor `[generation, offset]`; if its generation was rotated away it
continues at the oldest one left and is told that some output was dropped.
"""

from __future__ import annotations

import os
from typing import Any

import msgpack

from actors.wire.outputlog import DEFAULT_LIMIT, generations, is_record, output_file

__all__ = ["CursorError", "read_output"]


class CursorError(ValueError):
    """A reader's cursor that points past the output there is."""


def _check_cursor(directory: str | os.PathLike[str], kept: list[int], generation: int, offset: int) -> None:
    """Raise CursorError for a cursor no reader was given: a file or offset not written yet."""
    newest = kept[-1] if kept else 0
    if generation > newest:
        raise CursorError(f"cursor generation {generation} is past the newest output file ({newest})")
    try:
        size = os.stat(output_file(directory, generation)).st_size
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
        path = output_file(directory, generation)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                unpacker = msgpack.Unpacker(handle, raw=False, max_buffer_size=4 * DEFAULT_LIMIT + 4096)
                # bytes of whole objects read; not `tell()` at the end, which also counts the part
                # read so far of a record still being written (or about to be cut back on a full disk)
                consumed = 0
                for record in unpacker:
                    consumed = unpacker.tell()
                    if not is_record(record):
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
