"""Read a process's captured output as lines with their times: the stored history, then
(following) what comes next, until the process exits.

The daemon keeps output as records of whatever each write held; `--tail`, `--timestamps` and
`--json` speak of lines, so records are cut at newlines. A piece is a line, or the part of one
a record held (output written without its newline yet); `starts_line` tells which.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from actorctl.client import Client

__all__ = ["Piece", "Reader", "history", "tail", "then"]

POLL_INTERVAL = 0.1
"""Seconds between reads while following a quiet process."""


@dataclass(frozen=True)
class Piece:
    stream: int
    """1 stdout, 2 stderr."""
    time: float
    """When the daemon's shim stored it (unix time)."""
    data: bytes
    starts_line: bool


@dataclass
class Reader:
    """Where one reading of a process's output is: the cursor and, per stream, whether a line is open."""

    client: Client
    target: dict[str, Any]
    cursor: list[int] | None = None
    dropped: bool = False
    """Output was rotated away between two reads of this reader."""
    status: int | None = None
    """The process's exit status, once it has exited."""

    def __post_init__(self) -> None:
        self.open_line = {1: False, 2: False}

    def page(self) -> list[Piece]:
        result = self.client.call("containers.logs", {**self.target, "cursor": self.cursor})
        if result["dropped"] and self.cursor is not None:
            self.dropped = True
        self.cursor, self.status = result["cursor"], result["status"]
        pieces = []
        for stream, moment, data in result["records"]:
            for part in data.splitlines(keepends=True):
                pieces.append(Piece(stream, moment, part, not self.open_line.get(stream, False)))
                self.open_line[stream] = not part.endswith((b"\n", b"\r"))
        return pieces


def history(reader: Reader) -> list[Piece]:
    """Every piece stored so far."""
    pieces: list[Piece] = []
    while True:
        page = reader.page()
        if not page:
            return pieces
        pieces += page


def tail(pieces: list[Piece], lines: int) -> list[Piece]:
    """The pieces of the last `lines` lines."""
    if lines <= 0:
        return []
    starts = [index for index, piece in enumerate(pieces) if piece.starts_line]
    return pieces[starts[-lines]:] if len(starts) >= lines else pieces


def then(reader: Reader, until: float | None = None) -> Iterator[Piece]:
    """The pieces that come after the history, until the process exits (or `until` passes)."""
    while True:
        page = reader.page()
        for piece in page:
            if until is not None and piece.time > until:
                return
            yield piece
        if not page:
            if reader.status is not None or (until is not None and time.time() > until):
                return
            time.sleep(POLL_INTERVAL)
