"""The one reader of `containers.logs` (`LogStream`) and the CLI's lines on top of it, against
a scripted daemon: pages of records, the cursor, `dropped`, and when a follow ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actorctl.client import LogRecord, LogStream
from actorctl.client.transport import Transport
from actorctl.lines import LineCutter, Piece, last_lines


class ScriptedDaemon(Transport):
    """Answers `containers.logs` with the pages given, in order; records what it was asked."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        super().__init__("ipc:///nonexistent")
        self.pages: Iterator[dict[str, Any]] = iter(pages)
        self.asked: list[dict[str, Any] | None] = []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        assert method == "containers.logs"
        self.asked.append(params)
        try:
            return next(self.pages)
        except StopIteration:
            raise AssertionError("asked for more pages than the daemon has") from None


def page(records: list[list[Any]], cursor: int, *, status: int | None = None, dropped: bool = False) -> dict[str, Any]:
    return {"records": records, "cursor": [0, cursor], "status": status, "dropped": dropped}


def stream(daemon: ScriptedDaemon, **options: Any) -> LogStream:
    settings: dict[str, Any] = {"follow": False, "since": None, "until": None, "tail": None, **options}
    return LogStream(daemon, "c1", "init", **settings)


def test_a_follow_ends_once_until_has_passed_though_the_process_runs_on() -> None:
    daemon = ScriptedDaemon([page([[1, 10.0, b"a\n"]], 3), page([], 3), page([], 3)])
    records = list(stream(daemon, follow=True, until=20.0))
    assert records == [LogRecord(1, 10.0, b"a\n")]
    assert len(daemon.asked) == 2, "the first empty page once `until` has passed ends it"


def test_a_follow_calls_idle_between_empty_reads_and_ends_with_the_exit() -> None:
    daemon = ScriptedDaemon([page([], 0), page([], 0), page([[2, 1.0, b"x"]], 1), page([], 1, status=7)])
    idle_calls: list[None] = []
    output = stream(daemon, follow=True, poll_interval=0.0, idle=lambda: idle_calls.append(None))
    assert list(output) == [LogRecord(2, 1.0, b"x")]
    assert (output.status, len(idle_calls)) == (7, 2)


def test_a_stream_goes_on_from_another_ones_cursor() -> None:
    daemon = ScriptedDaemon([page([[1, 1.0, b"one\n"]], 4), page([], 4), page([[1, 2.0, b"two\n"]], 8), page([], 8)])
    first = stream(daemon)
    assert [r.data for r in first] == [b"one\n"] and first.cursor == [0, 4]
    second = stream(daemon, cursor=first.cursor)
    assert [r.data for r in second] == [b"two\n"]
    assert [params["cursor"] if params else None for params in daemon.asked] == [None, [0, 4], [0, 4], [0, 8]]


def test_dropped_says_output_was_rotated_away_unread_until_the_reader_resets_it() -> None:
    daemon = ScriptedDaemon([page([[1, 1.0, b"a"]], 1), page([[1, 2.0, b"c"]], 9, dropped=True), page([], 9)])
    output = stream(daemon)
    seen = []
    for record in output:
        seen.append((record.data, output.dropped))
        output.dropped = False
    assert seen == [(b"a", False), (b"c", True)] and output.dropped is False


def test_records_are_cut_into_lines_that_remember_an_open_line_per_stream() -> None:
    cutter = LineCutter()
    pieces = [piece for record in (LogRecord(1, 1.0, b"one\ntw"), LogRecord(2, 2.0, b"err\n"),
                                   LogRecord(1, 3.0, b"o\nthree\n"))
              for piece in cutter.cut(record)]
    assert pieces == [Piece(1, 1.0, b"one\n", True), Piece(1, 1.0, b"tw", True), Piece(2, 2.0, b"err\n", True),
                      Piece(1, 3.0, b"o\n", False), Piece(1, 3.0, b"three\n", True)]


@pytest.mark.parametrize(("lines", "expected"), [(0, []), (1, [b"c\n"]), (2, [b"b", b"b\n", b"c\n"]),
                                                 (9, [b"a\n", b"b", b"b\n", b"c\n"])])
def test_last_lines_keeps_whole_lines(lines: int, expected: list[bytes]) -> None:
    pieces = [Piece(1, 0.0, b"a\n", True), Piece(1, 0.0, b"b", True), Piece(1, 0.0, b"b\n", False),
              Piece(1, 0.0, b"c\n", True)]
    assert [p.data for p in last_lines(pieces, lines)] == expected
