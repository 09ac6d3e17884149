"""`actord start --pidfile` with a real actord: never written through a link, removed only while ours."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import Daemon, checked_daemon, new_state_dir, remove_state_dir

REFUSAL_TIMEOUT = 30.0
"""Seconds a refused start has to exit: on the old code it does not exit at all (it starts)."""


def test_a_symlinked_pidfile_is_refused_and_its_target_is_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"root's data\n")
    link = tmp_path / "actord.pid"
    link.symlink_to(target)
    daemon = Daemon(new_state_dir(), extra_args=["--pidfile", str(link)])
    try:
        daemon.start(wait=False)
        assert daemon.process is not None
        try:
            status = daemon.process.wait(REFUSAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("actord started with a symlinked pidfile")
        assert status == 1
        assert f"the pidfile {link} is a symbolic link" in daemon.log() and "Traceback" not in daemon.log()
        assert target.read_bytes() == b"root's data\n"
        assert link.is_symlink() and link.readlink() == target
    finally:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()
        remove_state_dir(daemon.state_dir)


def test_a_pidfile_holding_another_pid_is_left_at_stop(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pidfile = tmp_path / "actord.pid"
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--pidfile", str(pidfile)]), request) as daemon:
            assert daemon.process is not None
            assert pidfile.read_text() == f"{daemon.process.pid}\n"
            pidfile.write_text("4242\n")  # another actord (or an operator) has taken the file over
        assert pidfile.read_text() == "4242\n"
        assert f"pidfile {pidfile} left in place: it no longer holds our pid" in daemon.log()
    finally:
        remove_state_dir(state_dir)
