"""The CRI log's writer (shimproc/crilog.py) and its path check (actors/wire/crilog.py), without
a shim: lines cut as containerd cuts them, times as Go writes them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from actors.wire.crilog import MAX_LINE, cri_log_problem
from shimproc.crilog import CriLines, CriLog, open_cri_log, rfc3339nano


@pytest.mark.parametrize(("nanoseconds", "written"), [
    (0, b"1970-01-01T00:00:00Z"),
    (1_796_354_722_000_000_000, b"2026-12-04T03:25:22Z"),
    (1_796_354_722_500_000_000, b"2026-12-04T03:25:22.5Z"),
    (1_796_354_722_120_000_000, b"2026-12-04T03:25:22.12Z"),
    (1_796_354_722_000_000_123, b"2026-12-04T03:25:22.000000123Z"),
    (1_796_354_722_000_000_010, b"2026-12-04T03:25:22.00000001Z"),
    (951_825_599_999_999_999, b"2000-02-29T11:59:59.999999999Z"),
])
def test_times_are_rfc3339nano_in_utc_with_trailing_zeros_trimmed(nanoseconds: int, written: bytes) -> None:
    assert rfc3339nano(nanoseconds) == written


def test_a_line_longer_than_the_maximum_is_cut_in_parts_then_a_whole() -> None:
    lines = CriLines()
    found = []
    data = b"x" * 40960 + b"\n"
    for start in range(0, len(data), 4096):  # as the pipe hands it over
        found += lines.feed(data[start:start + 4096])
    assert [(tag, len(text)) for tag, text in found] == [(b"P", MAX_LINE), (b"P", MAX_LINE), (b"F", 8192)]
    assert lines.end() == []


@pytest.mark.parametrize(("length", "shape"), [
    (MAX_LINE - 1, [(b"F", MAX_LINE - 1)]),
    (MAX_LINE, [(b"F", MAX_LINE)]),
    (MAX_LINE + 1, [(b"P", MAX_LINE), (b"F", 1)]),
    (2 * MAX_LINE, [(b"P", MAX_LINE), (b"F", MAX_LINE)]),
])
def test_the_cut_is_at_the_maximum_as_containerds(length: int, shape: list[tuple[bytes, int]]) -> None:
    assert [(tag, len(text)) for tag, text in CriLines().feed(b"y" * length + b"\n")] == shape


def test_an_unterminated_line_waits_then_is_written_in_parts_and_ends_as_a_part() -> None:
    lines = CriLines()
    assert lines.feed(b"a" * MAX_LINE) == []  # it may still end at the next byte
    assert lines.feed(b"b") == [(b"P", b"a" * MAX_LINE)]
    assert lines.feed(b"c") == []
    assert lines.end() == [(b"P", b"bc")]
    assert lines.end() == []


def test_lines_span_reads_and_a_carriage_return_before_the_newline_is_dropped() -> None:
    lines = CriLines()
    assert lines.feed(b"ab") == []
    assert lines.feed(b"c\nd\r") == [(b"F", b"abc")]
    assert lines.feed(b"\n\n") == [(b"F", b"d"), (b"F", b"")]
    assert lines.feed(b"e\rf\r\r\n") == [(b"F", b"e\rf\r")]
    assert lines.feed(b"g\r") == []
    assert lines.end() == [(b"P", b"g\r")]


def entries(path: Path) -> list[tuple[bytes, bytes, bytes]]:
    found = []
    for line in path.read_bytes().splitlines():
        match = re.fullmatch(rb"\S+Z (stdout|stderr) ([PF]) (.*)", line)
        assert match is not None, line
        found.append((match.group(1), match.group(2), match.group(3)))
    return found


def test_streams_share_the_file_and_a_reopen_keeps_a_begun_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "pod" / "0.log"
    log = CriLog(str(path), open_cri_log(str(path)))
    log.write(1, b"out\nhal")
    log.write(2, b"err\n")
    os.rename(path, tmp_path / "0.log.1")
    log.reopen()
    log.write(1, b"f\n")
    log.end(2)
    log.write(2, b"last")
    log.end(2)
    log.close()
    assert entries(tmp_path / "0.log.1") == [(b"stdout", b"F", b"out"), (b"stderr", b"F", b"err")]
    assert entries(path) == [(b"stdout", b"F", b"half"), (b"stderr", b"P", b"last")]
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)


def test_a_symlink_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "0.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        open_cri_log(str(tmp_path / "0.log"))
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(("path", "problem"), [
    ("/var/log/pods/ns_pod_uid/c/0.log", None),
    ("", "must be a path of 1 to 4095 characters"),
    ("/" + "a" * 4095, "must be a path of 1 to 4095 characters"),
    ("c/0.log", "must be an absolute path"),
    ("/var/log/\0", "must not hold a NUL character"),
    ("/var/log/../0.log", "must be a normalized path to a file (as '/var/0.log')"),
    ("/var/log/./0.log", "must be a normalized path to a file (as '/var/log/0.log')"),
    ("/var/log//0.log", "must be a normalized path to a file (as '/var/log/0.log')"),
    ("//var/0.log", "must be a normalized path to a file (as '//var/0.log')"),
    ("/var/log/", "must be a normalized path to a file (as '/var/log')"),
    ("/", "must be a normalized path to a file (as '/')"),
])
def test_a_cri_log_path_must_be_absolute_and_normalized(path: str, problem: str | None) -> None:
    assert cri_log_problem(path) == problem
