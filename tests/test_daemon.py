"""The daemon's own life: the state dir lock, path limits, a clean stop."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.harness import ACTORD, Daemon


def test_a_second_actord_on_the_same_state_dir_refuses(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("held", sleeper)
    second = subprocess.run([ACTORD, "start", "--state-dir", str(daemon.state_dir)],
                            capture_output=True, text=True, timeout=30)
    assert second.returncode == 1
    assert "another actord" in second.stderr and str(daemon.process.pid) in second.stderr  # type: ignore[union-attr]
    assert [c["id"] for c in daemon.call("containers.list")] == ["held"]


def test_a_state_dir_too_long_for_ipc_is_refused(tmp_path: Path) -> None:
    long_dir = tmp_path / ("x" * 100)
    done = subprocess.run([ACTORD, "start", "--state-dir", str(long_dir)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "ipc paths are limited to 107" in done.stderr


def test_a_missing_runtime_is_named() -> None:
    from tests.harness import new_state_dir, remove_state_dir

    state_dir = new_state_dir()
    try:
        done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), "--runtime", "no-such-runc"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 1
        assert "no-such-runc" in done.stderr and "not installed" in done.stderr
    finally:
        remove_state_dir(state_dir)


def test_help_explains_the_commands() -> None:
    from tests.harness import ACTORCTL

    top = subprocess.run([ACTORCTL, "--help"], capture_output=True, text=True)
    assert "Exit codes" in top.stdout and "ACTORD_ADDRESS" in top.stdout
    for group in (["containers", "--help"], ["events", "--help"], ["containers", "kill", "--help"]):
        done = subprocess.run([ACTORCTL, *group], capture_output=True, text=True)
        assert done.returncode == 0 and "Usage" in done.stdout
    daemon_help = subprocess.run([ACTORD, "start", "--help"], capture_output=True, text=True)
    assert "--start-timeout" in daemon_help.stdout and "--retain-count" in daemon_help.stdout
