"""A process's captured output on disk: the format its shim writes and the daemon reads.

The shim appends `[stream, time, data]` msgpack records (stream 1 = stdout, 2 = stderr; time
in seconds since the epoch; data as bytes) to `output.<generation>.log` in the process's
output dir. When a file passes its size limit the shim starts the next generation and deletes
the one before the previous, so at most two files (2 x the limit) exist. A record is stored
whole or not at all. The writer is the shim's (`shimproc/outputlog.py`), the reader the
daemon's (`actors/outputlog.py`).

Paths are handled with os.path, not pathlib: in a shim, every library function run after the
fork costs pages it would otherwise share with the spawner.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgpack

__all__ = ["DEFAULT_LIMIT", "LIMIT_HIGH", "LIMIT_LOW", "STDERR", "STDOUT", "generations", "is_record", "output_file",
           "pack_record"]

DEFAULT_LIMIT = 1 << 20
"""Bytes of captured output per file (two are kept per process), unless `actord start --log-limit`."""
LIMIT_LOW, LIMIT_HIGH = 4096, 1 << 30
"""The bounds of `--log-limit` and of an exec's own `log_limit`."""
STDOUT, STDERR = 1, 2
_NAME = re.compile(r"output\.(\d+)\.log\Z")


def output_file(directory: str | os.PathLike[str], generation: int) -> str:
    """The file of one generation of output in `directory`."""
    return os.path.join(directory, f"output.{generation}.log")


def generations(directory: str | os.PathLike[str]) -> list[int]:
    """The generations of output files in `directory`, oldest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


def pack_record(stream: int, time: float, data: bytes) -> bytes:
    """One record as it is appended to an output file."""
    record: bytes = msgpack.packb([stream, time, data], use_bin_type=True)
    return record


def is_record(unpacked: Any) -> bool:
    """Is an object read from an output file a record (and not the garbage of a torn one)?"""
    return isinstance(unpacked, list) and len(unpacked) == 3 and isinstance(unpacked[2], bytes)
