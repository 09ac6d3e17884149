"""A process's output as lines, for `actorctl containers logs`: records cut at newlines.

The library's `LogStream` gives records of whatever each write held; `--tail`, `--timestamps`
and `--json` speak of lines, so the CLI cuts records on top of it. A piece is a line, or the
part of one a record held (output written without its newline yet); `starts_line` tells which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actorctl.client import LogRecord

__all__ = ["LineCutter", "Piece", "last_lines"]


@dataclass(frozen=True)
class Piece:
    stream: int
    """1 stdout, 2 stderr."""
    time: float
    """When the daemon's shim captured it (unix time)."""
    data: bytes
    starts_line: bool


@dataclass
class LineCutter:
    """Cuts records into pieces, remembering per stream whether a line is still open."""

    open_line: dict[int, bool] = field(default_factory=lambda: {1: False, 2: False})

    def cut(self, record: LogRecord) -> list[Piece]:
        pieces = []
        for part in record.data.splitlines(keepends=True):
            pieces.append(Piece(record.stream, record.timestamp, part, not self.open_line.get(record.stream, False)))
            self.open_line[record.stream] = not part.endswith((b"\n", b"\r"))
        return pieces


def last_lines(pieces: list[Piece], lines: int) -> list[Piece]:
    """The pieces of the last `lines` lines."""
    if lines <= 0:
        return []
    starts = [index for index, piece in enumerate(pieces) if piece.starts_line]
    return pieces[starts[-lines]:] if len(starts) >= lines else pieces
