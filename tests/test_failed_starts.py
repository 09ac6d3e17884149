"""A start that fails at any step leaves nothing: no shim, no runc container, no state, no fd, no mount.

The faults come from a wrapper around the real runc (a file names the fault), from
stopping the shim spawner, and from the daemon's own open-files limit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actorctl.client import DaemonError
from tests.harness import (
    Daemon,
    checked_daemon,
    mounts_under,
    new_state_dir,
    remove_state_dir,
    wait_until,
)

WRAPPER = """#!/bin/sh
fault=$(cat {fault} 2>/dev/null)
for arg; do case $arg in create|start|exec) command=$arg; break;; esac; done
case "$fault:$command" in
  create-fails:create) runc "$@"; echo '{{"level":"error","msg":"injected: create fails"}}' >&2; exit 1 ;;
  create-hangs:create) runc "$@"; exec sleep 60 ;;
  shim-dies:create) runc "$@"; kill -9 $PPID; exit 0 ;;
  init-dies:create) runc "$@" || exit $?
    while [ "$1" != "--pid-file" ]; do shift; done; kill -9 "$(cat "$2")"; exit 0 ;;
  start-fails:start) echo "injected: start fails" >&2; exit 1 ;;
  exec-fails:exec) runc "$@"; exit 1 ;;
esac
exec runc "$@"
"""

FAULTS = ["create-fails", "create-hangs", "shim-dies", "init-dies", "start-fails"]


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def faulty(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Path]]:
    """actord on a runtime wrapper whose fault is whatever the returned file says."""
    fault = tmp_path / "fault"
    wrapper = tmp_path / "runtime"
    wrapper.write_text(WRAPPER.format(fault=fault))
    wrapper.chmod(0o755)
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--runtime", str(wrapper), "--start-timeout", "3"]),
                            request) as daemon:
            yield daemon, fault
            fault.unlink(missing_ok=True)
    finally:
        remove_state_dir(state_dir)


def nothing_left(daemon: Daemon, fds_before: int) -> None:
    assert daemon.call("containers.list") == []
    assert list((daemon.state_dir / "containers").iterdir()) == []
    assert daemon.runc_containers() == []
    wait_until(lambda: not daemon.live_shims(), 10, message="no shim left")
    assert mounts_under(daemon.state_dir / "containers") == []
    assert daemon.process is not None
    wait_until(lambda: fd_count(daemon.process.pid) <= fds_before, 5,  # type: ignore[union-attr]
               message=f"the daemon's fds back to {fds_before}")


def warm_up(daemon: Daemon, bundle: Path) -> int:
    """One start and exit, so that lazily made sockets exist; the daemon's fd count then."""
    daemon.start_container("warm", bundle)
    daemon.call("containers.signal", {"id": "warm", "signal": 9})
    daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    wait_until(lambda: not daemon.live_shims() and not list((daemon.state_dir / "containers").iterdir()),
               message="the warm-up container to be gone")
    assert daemon.process is not None
    return fd_count(daemon.process.pid)


@pytest.mark.parametrize("fault", FAULTS)
def test_a_start_failing_at_any_runtime_step_leaves_nothing(faulty: tuple[Daemon, Path], fault: str,
                                                             sleeper: Path) -> None:
    daemon, fault_file = faulty
    fds = warm_up(daemon, sleeper)
    fault_file.write_text(fault)
    with pytest.raises(DaemonError) as failed:
        daemon.call("containers.start", {"id": "victim", "bundle": str(sleeper)}, timeout=30)
    assert failed.value.code in ("runtime_error", "timeout"), failed.value
    nothing_left(daemon, fds)
    assert [e for e in daemon.events() if e["id"] == "victim"] == []
    fault_file.unlink()
    daemon.start_container("victim", sleeper)  # the id is free and the daemon serves
    assert [c["id"] for c in daemon.call("containers.list")] == ["victim"]


def test_an_exec_failing_after_runc_exec_leaves_nothing(faulty: tuple[Daemon, Path],
                                                        bundles: Callable[..., Path]) -> None:
    daemon, fault_file = faulty
    daemon.start_container("box", bundles("sh", "-c", "while true; do sleep 0.2; done"))
    assert daemon.process is not None
    fds = fd_count(daemon.process.pid)
    fault_file.write_text("exec-fails")
    with pytest.raises(DaemonError):
        daemon.call("containers.exec", {"id": "box", "pid": "doomed", "args": ["sleep", "4343"]})
    wait_until(lambda: "sleep 4343" not in subprocess.run(["ps", "-eo", "args"], capture_output=True,
                                                           text=True).stdout, message="the exec'd process killed")
    assert [p["pid"] for p in daemon.call("containers.list")[0]["processes"]] == ["init"]
    assert sorted(os.listdir(daemon.state_dir / "containers" / "box")) == ["config.json", "container.json",
                                                                            "init", "rootfs"]
    wait_until(lambda: fd_count(daemon.process.pid) <= fds, 5,  # type: ignore[union-attr]
               message="the daemon's fds back")


def test_a_stalled_spawner_fails_the_start_and_forks_nothing_later(faulty: tuple[Daemon, Path],
                                                                   sleeper: Path) -> None:
    daemon, _ = faulty
    fds = warm_up(daemon, sleeper)
    spawner = daemon.spawner_pid()
    assert spawner is not None
    os.kill(spawner, signal.SIGSTOP)
    try:
        with pytest.raises(DaemonError):
            daemon.call("containers.start", {"id": "late", "bundle": str(sleeper)}, timeout=30)
    finally:
        os.kill(spawner, signal.SIGCONT)
    nothing_left(daemon, fds)
    assert daemon.live_shims() == [], "the spawner forked a shim for a start its starter gave up"
    daemon.start_container("late", sleeper)


def test_near_the_fd_limit_starts_are_refused_and_the_daemon_lives(faulty: tuple[Daemon, Path],
                                                                    sleeper: Path) -> None:
    """Starts stop the reserve short of the limit (libzmq aborts on EMFILE), then resume."""
    daemon, _ = faulty
    fds = warm_up(daemon, sleeper)
    assert daemon.process is not None
    pid = daemon.process.pid
    # the reserve depends on the listeners served (the CRI's among them): read the daemon's own figure
    logged = re.search(r"keeping (\d+) file descriptors free", daemon.log())
    assert logged is not None, "actord logs the fd reserve it keeps"
    reserve = int(logged.group(1))
    soft, hard = subprocess.run(["prlimit", "--pid", str(pid), "--nofile", "--output", "SOFT,HARD",
                                 "--noheadings"], capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={fds + reserve + 12}:{hard}"], check=True)
    try:
        started = 0
        with pytest.raises(DaemonError) as refused:
            for n in range(20):
                daemon.start_container(f"tight{n}", sleeper)
                started += 1
        assert refused.value.code == "busy" and "file descriptors" in refused.value.message
        assert 1 <= started < 20
        assert len(daemon.call("containers.list")) == started  # the daemon serves on
    finally:
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={soft}:{hard}"], check=True)
    for container in daemon.call("containers.list"):
        daemon.call("containers.signal", {"id": container["id"], "signal": 9})
    wait_until(lambda: not daemon.call("containers.list") and not daemon.live_shims()
               and not list((daemon.state_dir / "containers").iterdir()), 15, message="all gone")
    nothing_left(daemon, fds)
    daemon.start_container("after", sleeper)


def test_the_start_up_sweep_removes_runc_containers_nobody_owns(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("kept", sleeper)
    daemon.stop()
    leaked = ["runc", "--root", str(daemon.runtime_root), "create", "--bundle", str(sleeper), "leaked"]
    assert subprocess.run(leaked, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0
    daemon.start()
    wait_until(lambda: [c["id"] for c in daemon.runc_containers()] == ["kept"], message="the sweep")
    assert "deleting runc container leaked" in daemon.log()
    assert [c["id"] for c in daemon.call("containers.list")] == ["kept"]
