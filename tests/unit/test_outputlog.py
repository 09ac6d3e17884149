"""Reading output files while a record is being written: a cursor never points into a record."""

from __future__ import annotations

from pathlib import Path

import msgpack

from actors.outputlog import read_output


def record(data: bytes) -> bytes:
    packed: bytes = msgpack.packb([1, 1700000000.5, data], use_bin_type=True)
    return packed


def test_a_record_still_being_written_is_not_read_nor_passed_by_the_cursor(tmp_path: Path) -> None:
    first, second = record(b"one\n"), record(b"two\n" * 100)
    path = tmp_path / "output.0.log"
    path.write_bytes(first + second[:7])  # the writer is in the middle of the second record
    page = read_output(tmp_path, None, 1 << 20)
    assert [r[2] for r in page["records"]] == [b"one\n"]
    assert page["cursor"] == [0, len(first)]
    path.write_bytes(first)  # a full disk: the writer cuts the torn record back
    assert read_output(tmp_path, page["cursor"], 1 << 20)["records"] == []
    path.write_bytes(first + second)
    assert [r[2] for r in read_output(tmp_path, page["cursor"], 1 << 20)["records"]] == [b"two\n" * 100]
