"""Nothing lost across daemon restarts, daemon crashes and shim deaths (real runc, real signals)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actorctl.client import Client
from actorctl.client.events import attach
from actors.wire.events import CONTAINER_PREFIX
from tests.harness import ACTORCTL, Daemon, pid_alive, process_table, wait_until

BURST = 100
"""Containers started at once while a subscriber is stopped: 200 events, well past its buffers."""
LOOP = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done')


@pytest.fixture
def loop_bundle(bundles: Callable[..., Path]) -> Path:
    return bundles(*LOOP)


def restart(daemon: Daemon, sig: int = signal.SIGTERM) -> None:
    """Stop actord (SIGTERM: cleanly; SIGKILL: a crash) and start it again on the same state dir."""
    spawner = daemon.spawner_pid()
    daemon.stop(sig)
    if spawner:
        wait_until(lambda: not pid_alive(spawner), message="the old spawner to exit")
    daemon.start()


def exits(daemon: Daemon, container_id: str | None = None) -> list[tuple[str, str, int]]:
    return [(e["id"], e["pid"], e["status"]) for e in daemon.events(container_id=container_id)
            if e["type"] == "exit"]


def test_graceful_restart_brings_every_container_back(daemon: Daemon, loop_bundle: Path) -> None:
    before = {}
    for n in range(5):
        result = daemon.start_container(f"g{n}", loop_bundle)
        before[result["id"]] = result
    restart(daemon)
    after = {c["id"]: c for c in daemon.call("containers.list")}
    assert after == before
    process = daemon.call("containers.exec", {"id": "g0", "pid": "later", "args": ["sh", "-c", "echo still here"]})
    daemon.known_shims.add(process["shim_pid"])
    daemon.wait_events(lambda ev: ("g0", "later", 0) in [(e["id"], e["pid"], e["status"]) for e in ev])
    assert daemon.ctl("containers", "logs", "--pid", "later", "g0").stdout == "still here\n"
    assert daemon.call("containers.signal", {"id": "g1", "signal": 15}) == {}
    daemon.wait_events(lambda ev: ("g1", "init", 0) in exits(daemon))
    assert sorted(c["id"] for c in daemon.call("containers.list")) == ["g0", "g2", "g3", "g4"]


def test_exits_while_the_daemon_is_dead_are_reported_once(daemon: Daemon, loop_bundle: Path) -> None:
    pids = {}
    for n in range(4):
        pids[f"k{n}"] = daemon.start_container(f"k{n}", loop_bundle)["processes"][0]["system_pid"]
    restart_seq = daemon.events()[-1]["seq"]
    daemon.stop(signal.SIGKILL)
    for victim in ("k1", "k3"):
        os.kill(pids[victim], signal.SIGKILL)
    wait_until(lambda: all((daemon.state_dir / "containers" / v / "init" / "exit.json").exists() for v in ("k1", "k3")),
               message="the shims to record the exits")
    daemon.start()
    daemon.wait_events(lambda ev: len([e for e in ev if e["type"] == "exit"]) == 2)
    assert sorted(exits(daemon)) == [("k1", "init", 137), ("k3", "init", 137)]
    assert all(e["seq"] > restart_seq for e in daemon.events() if e["type"] == "exit")
    assert sorted(c["id"] for c in daemon.call("containers.list")) == ["k0", "k2"]
    restart(daemon)
    assert sorted(exits(daemon)) == [("k1", "init", 137), ("k3", "init", 137)], "reported twice"
    daemon.call("containers.signal", {"id": "k0", "signal": 9})
    daemon.wait_events(lambda ev: ("k0", "init", 137) in exits(daemon))
    assert daemon.start_container("k1", loop_bundle)["id"] == "k1"


def test_an_exec_that_dies_while_the_daemon_is_down(daemon: Daemon, loop_bundle: Path) -> None:
    daemon.start_container("ed", loop_bundle)
    process = daemon.call("containers.exec", {"id": "ed", "pid": "sleep", "args": ["sleep", "1000"]})
    daemon.known_shims.add(process["shim_pid"])
    daemon.stop(signal.SIGINT)
    os.kill(process["system_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(process["shim_pid"]), message="the exec's shim to exit")
    daemon.start()
    daemon.wait_events(lambda ev: exits(daemon) == [("ed", "sleep", 137)])
    [container] = daemon.call("containers.list")
    assert [p["pid"] for p in container["processes"]] == ["init"]


def test_a_killed_init_shim_ends_the_container(daemon: Daemon, loop_bundle: Path) -> None:
    result = daemon.start_container("shimless", loop_bundle)
    init = result["processes"][0]
    exec_process = daemon.call("containers.exec", {"id": "shimless", "pid": "top1", "args": ["sleep", "1000"]})
    daemon.known_shims.add(exec_process["shim_pid"])
    os.kill(init["shim_pid"], signal.SIGKILL)
    daemon.wait_events(lambda ev: ("shimless", "init", 137) in exits(daemon), timeout=10)
    assert exits(daemon) == [("shimless", "top1", 137), ("shimless", "init", 137)]
    wait_until(lambda: not pid_alive(init["system_pid"]) and not pid_alive(exec_process["system_pid"]),
               message="the container's processes to die")
    assert daemon.call("containers.list") == []
    wait_until(lambda: daemon.runc_containers() == [], message="runc's container to go")
    again = daemon.start_container("shimless", loop_bundle)
    assert again["processes"][0]["system_pid"] != init["system_pid"]


def test_a_killed_shim_of_a_paused_container(daemon: Daemon, loop_bundle: Path) -> None:
    result = daemon.start_container("frozen", loop_bundle)
    init = result["processes"][0]
    daemon.call("containers.pause", {"id": "frozen"})
    os.kill(init["shim_pid"], signal.SIGKILL)
    daemon.wait_events(lambda ev: ("frozen", "init", 137) in exits(daemon), timeout=10)
    assert [e["type"] for e in daemon.events()] == ["start-container", "pause", "exit"]
    wait_until(lambda: not pid_alive(init["system_pid"]), message="the frozen process to die")
    wait_until(lambda: daemon.runc_containers() == [], message="runc's container to go")
    assert daemon.call("containers.list") == []


def test_sequence_numbers_continue_across_restarts(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    quick = bundles("true")
    daemon.start_container("s1", quick)
    daemon.wait_events(lambda ev: len(ev) == 2)
    restart(daemon)
    daemon.start_container("s2", quick)
    daemon.wait_events(lambda ev: len(ev) == 4)
    restart(daemon, signal.SIGKILL)
    daemon.start_container("s3", quick)
    events = daemon.wait_events(lambda ev: len(ev) == 6)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["id"] for e in events] == ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert len({e["boot"] for e in events}) == 3


@pytest.mark.slow
def test_background_children_leave_no_zombies_and_no_shims(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    parent = bundles("sh", "-c", "sleep 4321 & sleep 1 & (sleep 0.5; exit 3) & wait $!; sleep 2; exit 0")
    for n in range(15):
        daemon.start_container(f"bg{n}", parent)
    daemon.wait_events(lambda ev: sum(e["type"] == "exit" for e in ev) == 15, timeout=30)
    assert all(status == 0 for _, _, status in exits(daemon))
    wait_until(lambda: daemon.live_shims() == [], 15, message="every shim to exit")
    wait_until(lambda: daemon.zombies() == [], 5, message="no zombies under actord or its shims")
    assert daemon.runc_containers() == []
    leftovers = [p for p in process_table() if p["cmdline"].startswith("sleep 4321")]
    assert leftovers == []


@pytest.mark.slow
def test_a_late_and_slow_subscriber_sees_every_event(bundles: Callable[..., Path]) -> None:
    from tests.harness import new_state_dir, remove_state_dir

    state_dir = new_state_dir()
    daemon = Daemon(state_dir, extra_args=["--events-hwm", "2", "--events-buffer", "2048"]).start()
    quick = bundles("true")
    follower = None
    try:
        daemon.start_container("early", quick)
        daemon.wait_events(lambda ev: len(ev) == 2)
        follower = subprocess.Popen([ACTORCTL, "events", "--json", "--after", "0"], stdout=subprocess.PIPE,
                                    env=dict(os.environ, ACTORD_ADDRESS=daemon.address))
        lines: list[dict[str, Any]] = []

        def read() -> None:
            assert follower is not None and follower.stdout is not None
            for line in follower.stdout:
                lines.append(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        wait_until(lambda: len(lines) == 2, message="the replayed events")
        witness = attach(daemon.events_address, [CONTAINER_PREFIX], rcvhwm=1)  # proves that this setup really drops
        follower.send_signal(signal.SIGSTOP)
        failures: list[Exception] = []

        def burst(first: int) -> None:
            with Client(daemon.address, timeout=60) as client:
                for n in range(first, first + BURST // 10):
                    try:
                        client.call("containers.start", {"id": f"burst{n}", "bundle": str(quick)})
                    except Exception as exc:
                        failures.append(exc)

        threads = [threading.Thread(target=burst, args=(n * BURST // 10,)) for n in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert failures == [], daemon.log()
        expected = 2 + 2 * BURST
        total = daemon.wait_events(lambda ev: len(ev) == expected, timeout=60)
        witnessed = 0
        while witness.poll(200):
            witness.recv_multipart()
            witnessed += 1
        witness.close()
        assert witnessed < 2 * BURST, "no event was dropped: the test proves nothing"
        follower.send_signal(signal.SIGCONT)
        wait_until(lambda: len(lines) >= expected, timeout=30, message="the follower to catch up")
        daemon.start_container("last", quick)  # events after it would be duplicates, seen before its own
        wait_until(lambda: len(lines) >= expected + 2, timeout=30, message="the last container's events")
        assert [e["seq"] for e in lines] == list(range(1, expected + 3))
        assert [e["seq"] for e in total] == list(range(1, expected + 1))
    finally:
        if follower is not None:
            follower.send_signal(signal.SIGCONT)
            follower.terminate()
            follower.wait(10)
        daemon.kill_everything()
        assert daemon.stop() == 0
        remove_state_dir(state_dir)


def test_the_follower_survives_a_daemon_restart(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    quick = bundles("true")
    follower = subprocess.Popen([ACTORCTL, "events", "--json", "--after", "0"], stdout=subprocess.PIPE,
                                env=dict(os.environ, ACTORD_ADDRESS=daemon.address))
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        daemon.start_container("before", quick)
        wait_until(lambda: len(lines) == 2, message="events before the restart")
        restart(daemon, signal.SIGKILL)
        daemon.start_container("after", quick)
        wait_until(lambda: len(lines) == 4, timeout=20, message="events after the restart")
        assert [(e["seq"], e["id"]) for e in lines] == [(1, "before"), (2, "before"), (3, "after"), (4, "after")]
        assert follower.poll() is None
    finally:
        follower.terminate()
        follower.wait(10)


def test_a_torn_event_log_and_a_half_deleted_container(daemon: Daemon, loop_bundle: Path,
                                                        bundles: Callable[..., Path]) -> None:
    quick = bundles("true")
    daemon.start_container("fine", quick)
    daemon.wait_events(lambda ev: len(ev) == 2)
    result = daemon.start_container("broken", loop_bundle)
    init = result["processes"][0]
    kept = daemon.start_container("kept", loop_bundle)
    daemon.stop(signal.SIGKILL)
    with open(daemon.state_dir / "events.log", "ab") as log:
        log.write(msgpack.packb({"seq": 99, "type": "exit"})[:-3])  # a torn last record
    shutil.rmtree(daemon.state_dir / "containers" / "broken" / "init")
    daemon.start()
    assert [c["id"] for c in daemon.call("containers.list")] == ["kept"]
    wait_until(lambda: not pid_alive(init["system_pid"]), message="the damaged container's process to be killed")
    wait_until(lambda: not (daemon.state_dir / "containers" / "broken").exists(), message="its state to go")
    assert "discarding container broken" in daemon.log()
    assert [e["seq"] for e in daemon.events()] == [1, 2, 3, 4]
    daemon.start_container("next", quick)
    events = daemon.wait_events(lambda ev: len(ev) == 6)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    [process] = daemon.call("containers.state", {"id": "kept"})["processes"]
    assert kept["processes"][0]["system_pid"] == process["system_pid"]
    assert daemon.start_container("broken", loop_bundle)["id"] == "broken"


def test_pidfile_and_stack_dump(daemon: Daemon, tmp_path: Path) -> None:
    from tests.harness import new_state_dir, remove_state_dir

    pidfile = tmp_path / "actord.pid"
    other = Daemon(new_state_dir(), extra_args=["--pidfile", str(pidfile)]).start()
    try:
        assert other.process is not None
        assert pidfile.read_text().strip() == str(other.process.pid)
        os.kill(other.process.pid, signal.SIGUSR1)
        wait_until(lambda: "Current state of Supervisor" in other.log(), message="a stack dump in the log")
        assert other.call("version")["protocol"] == 1
        assert other.stop() == 0
        assert not pidfile.exists()
    finally:
        if other.process and other.process.poll() is None:
            other.process.kill()
        remove_state_dir(other.state_dir)


def test_a_shim_that_died_while_the_daemon_was_down(daemon: Daemon, loop_bundle: Path) -> None:
    dead = daemon.start_container("noshim", loop_bundle)["processes"][0]
    daemon.start_container("fine", loop_bundle)
    daemon.stop(signal.SIGKILL)
    os.kill(dead["shim_pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(dead["shim_pid"]), message="the shim to die")
    assert pid_alive(dead["system_pid"]), "the container outlives its shim until the daemon deals with it"
    daemon.start()
    daemon.wait_events(lambda ev: ("noshim", "init", 137) in exits(daemon))
    wait_until(lambda: not pid_alive(dead["system_pid"]), message="the orphaned container process to be killed")
    assert [c["id"] for c in daemon.call("containers.list")] == ["fine"]
    wait_until(lambda: [c["id"] for c in daemon.runc_containers()] == ["fine"], message="runc's container to go")
    assert "died while actord was down" in daemon.log()


def test_retention_keeps_the_newest_events_and_says_what_was_trimmed(bundles: Callable[..., Path]) -> None:
    from tests.harness import new_state_dir, remove_state_dir

    state_dir = new_state_dir()
    daemon = Daemon(state_dir, extra_args=["--retain-count", "5"]).start()
    try:
        quick = bundles("true")
        for n in range(6):
            daemon.start_container(f"r{n}", quick)
        daemon.wait_events(lambda ev: bool(ev) and ev[-1]["seq"] == 12)
        result = daemon.call("events.replay", {"after": 0})
        assert [e["seq"] for e in result["events"]] == [8, 9, 10, 11, 12]
        assert result["truncated"] is True and result["first_seq"] == 8
        assert daemon.call("events.replay", {"after": 9})["truncated"] is False
        daemon.stop()
        daemon.start()
        assert [e["seq"] for e in daemon.events()] == [8, 9, 10, 11, 12]
        daemon.start_container("after", quick)
        daemon.wait_events(lambda ev: ev[-1]["seq"] == 14)
    finally:
        daemon.kill_everything()
        assert daemon.stop() == 0
        remove_state_dir(state_dir)


def test_sigint_stops_cleanly_and_a_second_one_at_once(daemon: Daemon, loop_bundle: Path) -> None:
    started = daemon.start_container("stays", loop_bundle)["processes"][0]
    assert daemon.process is not None
    assert daemon.stop(signal.SIGINT) == 0
    assert pid_alive(started["system_pid"]) and pid_alive(started["shim_pid"])
    daemon.start()
    assert daemon.call("containers.list")[0]["processes"][0]["system_pid"] == started["system_pid"]
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGINT)
    daemon.process.send_signal(signal.SIGINT)
    assert daemon.process.wait(10) in (0, 130)
    assert pid_alive(started["system_pid"])
    daemon.start()
