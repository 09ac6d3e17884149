"""Exec, stdio, attach, logs, terminals, pause/resume, update, stats, OOM: real runc containers."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorctl.bundle import create_bundle
from actorctl.client import DaemonError
from tests.harness import ACTORCTL, Daemon, wait_until

REAPING_INIT = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done')


@pytest.fixture
def shell_init(bundles: Callable[..., Path]) -> Path:
    """A container whose init is a shell loop: it reaps adopted orphans, and TERM ends it with 0."""
    return bundles(*REAPING_INIT)


def kinds(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["pid"], e["status"]) for e in events]


def test_exec_echo_gives_output_and_status(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    done = daemon.ctl("containers", "exec", "--pid", "echo", "--attach", "top", "--",
                      "sh", "-c", "echo -n Ay Caramba! ; exit 1")
    assert done.returncode == 1
    assert done.stdout == "Ay Caramba!"
    events = daemon.wait_events(lambda ev: len(ev) == 3)
    assert kinds(events) == [("start-container", None, None), ("start-process", "echo", None),
                             ("exit", "echo", 1)]
    logs = daemon.ctl("containers", "logs", "--pid", "echo", "top")
    assert logs.stdout == "Ay Caramba!"


def test_exec_killed_leaves_the_container_running(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    process = daemon.call("containers.exec", {"id": "top", "pid": "top1", "args": ["sleep", "1000"]})
    assert process["pid"] == "top1" and process["args"] == ["sleep", "1000"]
    daemon.known_shims.add(process["shim_pid"])
    [container] = daemon.call("containers.list")
    assert [p["pid"] for p in container["processes"]] == ["init", "top1"]
    with pytest.raises(DaemonError) as duplicate:
        daemon.call("containers.exec", {"id": "top", "pid": "top1", "args": ["true"]})
    assert duplicate.value.code == "already_exists"
    killed = daemon.ctl("containers", "kill", "--pid", "top1", "--signal", "KILL", "top")
    assert killed.returncode == 0, killed.stderr
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events)[-1] == ("exit", "top1", 137)
    [container] = daemon.call("containers.list")
    assert container["status"] == "running" and container["bundle"] == str(shell_init)
    assert [p["pid"] for p in container["processes"]] == ["init"]


def test_term_to_init_ends_its_execs_first(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    daemon.call("containers.exec", {"id": "top", "pid": "top1", "args": ["sleep", "1000"]})
    daemon.call("containers.signal", {"id": "top", "signal": 15})
    events = daemon.wait_events(lambda ev: sum(e["type"] == "exit" for e in ev) == 2)
    exits = [(e["pid"], e["status"]) for e in events if e["type"] == "exit"]
    assert exits == [("top1", 137), ("init", 0)]
    assert daemon.call("containers.list") == []


def test_exec_with_a_detached_child_exits_promptly(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    daemon.call("containers.exec", {"id": "top", "pid": "bg",
                                    "args": ["sh", "-c", "sleep 1000 2>&- 1>&- 0<&- &"]})
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev), timeout=5)
    assert kinds(events)[-1] == ("exit", "bg", 0)
    ps = daemon.ctl("containers", "exec", "--attach", "top", "--", "ps")
    assert "sleep 1000" in ps.stdout


def test_pause_and_resume(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("p1", shell_init)
    assert daemon.ctl("containers", "pause", "p1").returncode == 0
    assert daemon.call("containers.state", {"id": "p1"})["status"] == "paused"
    again = daemon.ctl("containers", "pause", "p1")
    assert again.returncode == 1 and "is paused" in again.stderr
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.exec", {"id": "p1", "args": ["true"]})
    assert refused.value.code == "conflict"
    assert daemon.ctl("containers", "resume", "p1").returncode == 0
    assert daemon.call("containers.state", {"id": "p1"})["status"] == "running"
    twice = daemon.ctl("containers", "resume", "p1")
    assert twice.returncode == 1 and "is running" in twice.stderr
    assert kinds(daemon.events()) == [("start-container", None, None), ("pause", None, None),
                                      ("resume", None, None)]


def test_update_memory_limit_shows_in_stats(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("u1", shell_init)
    before = daemon.call("containers.stats", {"id": "u1"})
    assert before["memory"]["usage"] > 0 and before["cpu"]["usage_total_ns"] > 0
    assert before["pids"]["current"] >= 1
    assert set(before) >= {"memory", "cpu", "pids", "blkio", "timestamp"}
    done = daemon.ctl("containers", "update", "--memory-limit", str(64 << 20), "--pids-limit", "50", "u1")
    assert done.returncode == 0, done.stderr
    after = json.loads(daemon.ctl("containers", "stats", "--json", "u1").stdout)
    assert after["memory"]["limit"] == 64 << 20
    assert after["pids"]["limit"] == 50
    assert "memory" in daemon.ctl("containers", "stats", "u1").stdout
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.update", {"id": "u1"})
    assert refused.value.code == "invalid_params"


def test_oom_comes_before_the_exit(daemon: Daemon, tmp_path: Path) -> None:
    bundle = create_bundle(tmp_path / "oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"].setdefault("resources", {})["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    (bundle / "config.json").write_text(json.dumps(config))
    daemon.start_container("oom", bundle)
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events) == [("start-container", None, None), ("oom", None, None), ("exit", "init", 137)]


def test_a_trap_on_usr1_gets_the_signal(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    trap = bundles("sh", "-c", 'trap "echo got usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done')
    daemon.start_container("usr", trap)
    wait_until(lambda: "ready" in daemon.ctl("containers", "logs", "usr").stdout, message="the trap")
    assert daemon.ctl("containers", "kill", "--signal", "USR1", "usr").returncode == 0
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events)[-1] == ("exit", "init", 5)
    assert daemon.ctl("containers", "logs", "usr").stdout == "ready\ngot usr1\n"


def test_logs_of_a_running_container(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    talker = bundles("sh", "-c", "echo to-out; echo to-err >&2; while true; do sleep 0.2; done")
    daemon.start_container("talk", talker)
    wait_until(lambda: "to-out" in daemon.ctl("containers", "logs", "talk").stdout, message="output")
    logs = daemon.ctl("containers", "logs", "talk")
    assert logs.stdout == "to-out\n" and logs.stderr == "to-err\n"
    follower = subprocess.Popen([ACTORCTL, "containers", "logs", "--follow", "talk"], stdout=subprocess.PIPE,
                                env=dict(os.environ, ACTORD_ADDRESS=daemon.address))
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"to-out\n"
        daemon.call("containers.signal", {"id": "talk", "signal": 9})
        assert follower.wait(10) == 0
    finally:
        follower.kill()
        follower.wait()


def test_start_attach_gives_output_stdin_and_exit_code(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    echo = bundles("sh", "-c", 'read line; echo "got $line"; echo oops >&2; exit 3')
    done = daemon.ctl("containers", "start", "--attach", "-i", "att", str(echo), input=b"hello\n")
    assert done.returncode == 3
    assert done.stdout == "got hello\n" and done.stderr == "oops\n"


def test_output_before_attach_is_not_lost_and_nobody_reading_blocks_nothing(
        daemon: Daemon, bundles: Callable[..., Path]) -> None:
    flood = bundles("sh", "-c", "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; exit 0")
    daemon.start_container("flood", flood)
    daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    logs = daemon.ctl("containers", "logs", "flood")
    lines = logs.stdout.splitlines()
    assert lines[0] == "line 0" and lines[-1] == "line 2999" and len(lines) == 3000


def test_close_stdin_is_acknowledged_and_ends_input(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    daemon.call("containers.exec", {"id": "top", "pid": "cat", "args": ["cat"], "stdin": True})
    assert daemon.call("containers.stdin", {"id": "top", "pid": "cat", "data": b"abc\n"}) == {}
    assert daemon.call("containers.close_stdin", {"id": "top", "pid": "cat"}) == {}
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events)[-1] == ("exit", "cat", 0)
    assert daemon.ctl("containers", "logs", "--pid", "cat", "top").stdout == "abc\n"
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.resize", {"id": "top", "width": 80, "height": 24})
    assert refused.value.code == "conflict" and "terminal" in refused.value.message


def read_until(fd: int, needle: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {needle!r}; saw {seen!r}"
        if select.select([fd], [], [], remaining)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def test_tty_exec_through_a_pseudo_terminal(daemon: Daemon, shell_init: Path) -> None:
    daemon.start_container("top", shell_init)
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    client = subprocess.Popen(
        [ACTORCTL, "containers", "exec", "--pid", "term", "-i", "--tty", "--attach", "top", "--", "sh"],
        stdin=slave, stdout=slave, stderr=slave, env=dict(os.environ, ACTORD_ADDRESS=daemon.address),
        start_new_session=True,
    )
    try:
        # busybox ash asks the terminal where the cursor is before its first prompt: answer it
        read_until(master, b"\x1b[6n")
        os.write(master, b"\x1b[1;1R")
        os.write(master, b"tty; echo $((6*7))x\r")
        seen = read_until(master, b"42x")
        assert b"/dev/pts/" in seen
        daemon.call("containers.resize", {"id": "top", "pid": "term", "width": 100, "height": 40})
        os.write(master, b"stty size\r")
        assert b"40 100" in read_until(master, b"40 100")
        os.write(master, b"exit 3\r")
        assert client.wait(15) == 3
        assert termios.tcgetattr(slave) == before, "the local terminal was not restored"
    finally:
        client.kill()
        client.wait()
        os.close(master)
        os.close(slave)
