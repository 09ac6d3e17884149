"""The pidfile without a daemon: written only as a regular file of its own, removed only while ours."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from actors.pidfile import PidFile, PidFileError


def test_written_with_our_pid_and_removed_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "actord.pid"
    path.write_text("a stale, longer pidfile\n")
    pidfile = PidFile(path)
    pidfile.write()
    assert path.read_text() == f"{os.getpid()}\n"
    assert pidfile.remove() and not path.exists()
    assert not pidfile.remove()  # already gone


def test_a_symlink_or_a_fifo_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("kept\n")
    link = tmp_path / "link.pid"
    link.symlink_to(target)
    with pytest.raises(PidFileError, match=re.escape(f"the pidfile {link} is a symbolic link")):
        PidFile(link).write()
    fifo = tmp_path / "fifo.pid"
    os.mkfifo(fifo)
    with pytest.raises(PidFileError, match=re.escape(f"cannot write the pidfile {fifo}: No such device or address")):
        PidFile(fifo).write()  # no reader: the open fails (ENXIO) instead of blocking
    assert target.read_text() == "kept\n"


def test_a_file_that_is_no_longer_ours_is_left(tmp_path: Path) -> None:
    path = tmp_path / "actord.pid"
    pidfile = PidFile(path)
    pidfile.write()
    path.write_text(f"{os.getpid() + 1}\n")
    assert not pidfile.remove() and path.exists()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text(f"{os.getpid()}\n")  # our pid, but behind a link we did not make
    assert not pidfile.remove() and path.is_symlink()
