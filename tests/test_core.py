"""The core: start, list, state, kill, exit statuses, events, through actorctl and the client."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actorctl.client import Client, DaemonError
from tests.harness import ACTORCTL, Daemon, pid_alive, wait_until


def kinds(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["id"], e["pid"], e["status"]) for e in events]


def test_start_list_state_kill_through_actorctl(daemon: Daemon, sleeper: Path) -> None:
    started = daemon.ctl("containers", "start", "--label", "tier=web", "web1", str(sleeper))
    assert started.returncode == 0, started.stderr
    assert "web1 started" in started.stdout

    listed = daemon.ctl("containers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [container] = json.loads(listed.stdout)
    assert container["id"] == "web1"
    assert container["status"] == "running"
    assert container["bundle"] == str(sleeper)
    assert container["labels"] == {"tier": "web"}
    [init] = container["processes"]
    assert init["pid"] == "init" and init["args"] == ["sleep", "100000"]
    assert pid_alive(init["system_pid"]) and pid_alive(init["shim_pid"])
    daemon.known_shims.add(init["shim_pid"])

    state = daemon.ctl("containers", "state", "--json", "web1")
    assert json.loads(state.stdout) == container
    human = daemon.ctl("containers", "list")
    assert "web1" in human.stdout and "running" in human.stdout

    killed = daemon.ctl("containers", "kill", "--signal", "SIGKILL", "web1")
    assert killed.returncode == 0, killed.stderr
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events) == [("start-container", "web1", None, None), ("exit", "web1", "init", 137)]
    wait_until(lambda: json.loads(daemon.ctl("containers", "list", "--json").stdout) == [])
    wait_until(lambda: not pid_alive(init["shim_pid"]), message="the shim to exit")
    wait_until(lambda: not (daemon.state_dir / "containers" / "web1").exists(), message="state cleanup")


def test_exit_status_of_the_init_is_reported(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("seven", bundles("sh", "-c", "exit 7"))
    events = daemon.wait_events(lambda ev: any(e["type"] == "exit" for e in ev))
    assert kinds(events) == [("start-container", "seven", None, None), ("exit", "seven", "init", 7)]


def test_term_to_a_trapping_shell_and_kill_give_their_statuses(daemon: Daemon, bundles: Callable[..., Path],
                                                               sleeper: Path) -> None:
    trap = bundles("sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done")
    daemon.start_container("trap", trap)
    daemon.start_container("plain", sleeper)
    daemon.call("containers.signal", {"id": "trap", "signal": 15})
    daemon.call("containers.signal", {"id": "plain", "signal": 9})
    events = daemon.wait_events(lambda ev: sum(e["type"] == "exit" for e in ev) == 2)
    statuses = {e["id"]: e["status"] for e in events if e["type"] == "exit"}
    assert statuses == {"trap": 42, "plain": 137}


def test_events_are_ordered_and_the_cli_prints_them(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("a1", sleeper)
    daemon.call("containers.signal", {"id": "a1", "signal": 9})
    daemon.wait_events(lambda ev: len(ev) == 2)
    printed = daemon.ctl("events", "--no-follow", "--json")
    assert printed.returncode == 0, printed.stderr
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert [(e["seq"], e["type"], e["status"]) for e in lines] == [(1, "start-container", None), (2, "exit", 137)]
    assert set(lines[0]) == {"seq", "type", "id", "pid", "status", "timestamp"}
    after = daemon.ctl("events", "--no-follow", "--json", "--after", "1")
    assert [json.loads(line)["seq"] for line in after.stdout.splitlines()] == [2]
    human = daemon.ctl("events", "--no-follow")
    assert "start-container" in human.stdout and "status=137" in human.stdout


def test_events_follow_replays_then_shows_live_events(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("before", sleeper)
    env = dict(os.environ, ACTORD_ADDRESS=daemon.address)
    follower = subprocess.Popen([ACTORCTL, "events", "--json", "--after", "0"], stdout=subprocess.PIPE,
                                text=True, env=env)
    lines: list[dict[str, Any]] = []

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_until(lambda: len(lines) >= 1, message="the replayed event")
        daemon.call("containers.signal", {"id": "before", "signal": 9})
        daemon.start_container("live", sleeper)
        daemon.call("containers.signal", {"id": "live", "signal": 9})
        wait_until(lambda: len(lines) >= 4, message="live events")
        assert [(e["seq"], e["type"], e["id"], e["status"]) for e in lines] == [
            (1, "start-container", "before", None), (2, "exit", "before", 137),
            (3, "start-container", "live", None), (4, "exit", "live", 137)]
    finally:
        follower.terminate()
        follower.wait(10)
        reader.join(10)


def test_events_filtered_by_container_id(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    quick = bundles("true")
    for n in range(3):
        daemon.start_container(f"ls-{n}", quick)
    daemon.wait_events(lambda ev: sum(e["type"] == "exit" for e in ev) == 3)
    only = daemon.ctl("events", "--no-follow", "--json", "--id", "ls-1")
    got = [json.loads(line) for line in only.stdout.splitlines()]
    assert [(e["type"], e["id"], e["pid"], e["status"]) for e in got] == [
        ("start-container", "ls-1", None, None), ("exit", "ls-1", "init", 0)]


@pytest.mark.slow
def test_twenty_concurrent_starts_all_run_and_every_exit_is_seen_once(daemon: Daemon, sleeper: Path) -> None:
    ids = [f"c{n:02d}" for n in range(20)]
    results: dict[str, Any] = {}

    def start(container_id: str) -> None:
        with Client(daemon.address, timeout=60) as client:
            results[container_id] = client.call("containers.start", {"id": container_id, "bundle": str(sleeper)})

    threads = [threading.Thread(target=start, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sorted(results) == ids
    for result in results.values():
        daemon.known_shims.add(result["processes"][0]["shim_pid"])
    listed = daemon.call("containers.list")
    assert sorted(c["id"] for c in listed) == ids
    assert all(c["status"] == "running" for c in listed)
    assert all(pid_alive(c["processes"][0]["system_pid"]) for c in listed)
    wait_until(lambda: daemon.zombies() == [], 5, message="no zombies under actord or its shims")
    for cid in ids:
        daemon.call("containers.signal", {"id": cid, "signal": 9})
    events = daemon.wait_events(lambda ev: sum(e["type"] == "exit" for e in ev) >= 20, timeout=30)
    exits = [e for e in events if e["type"] == "exit"]
    assert sorted(e["id"] for e in exits) == ids
    assert all(e["status"] == 137 for e in exits)
    starts = [e for e in events if e["type"] == "start-container"]
    assert sorted(e["id"] for e in starts) == ids
    for cid in ids:
        assert [e["type"] for e in events if e["id"] == cid] == ["start-container", "exit"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, 41))
    wait_until(lambda: daemon.live_shims() == [], 20, message="all shims to exit")
    wait_until(lambda: list((daemon.state_dir / "containers").iterdir()) == [], message="state cleanup")


def test_containers_keep_running_when_actord_stops(daemon: Daemon, sleeper: Path) -> None:
    result = daemon.start_container("survivor", sleeper)
    init = result["processes"][0]
    spawner = daemon.spawner_pid()
    assert daemon.stop() == 0
    assert spawner is not None and wait_until(lambda: not pid_alive(spawner), message="spawner exit")
    assert pid_alive(init["system_pid"]) and pid_alive(init["shim_pid"])
    assert [c["id"] for c in daemon.runc_containers()] == ["survivor"]
    # the shim still reports into its state dir with no daemon to hear it
    daemon.kill_everything()
    record = json.loads((daemon.state_dir / "containers" / "survivor" / "init" / "exit.json").read_text())
    assert record["status"] == 137


def test_process_titles(daemon: Daemon, sleeper: Path) -> None:
    result = daemon.start_container("titled", sleeper)
    shim = result["processes"][0]["shim_pid"]
    assert Path(f"/proc/{shim}/cmdline").read_bytes().split(b"\0")[0] == b"actor-shim titled init"
    assert daemon.process is not None
    title = Path(f"/proc/{daemon.process.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    assert title == f"actord {daemon.state_dir}"
    status = Path(f"/proc/{shim}/status").read_text()
    assert "\nPPid:\t" in status


def test_state_dir_and_sockets_are_private(daemon: Daemon, sleeper: Path) -> None:
    daemon.start_container("priv", sleeper)
    for path in (daemon.state_dir, daemon.state_dir / "actord.sock", daemon.state_dir / "events.sock",
                 daemon.state_dir / "shim.sock", daemon.state_dir / "containers" / "priv"):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o022 == 0, f"{path} is writable by others: {oct(mode)}"


def test_containers_list_pages_by_id(daemon: Daemon, sleeper: Path) -> None:
    for name in ("c", "a", "b"):
        daemon.start_container(name, sleeper)
    assert [c["id"] for c in daemon.call("containers.list")] == ["a", "b", "c"]
    first = daemon.call("containers.list", {"limit": 2})
    assert [c["id"] for c in first] == ["a", "b"]
    assert [c["id"] for c in daemon.call("containers.list", {"after": "b", "limit": 2})] == ["c"]
    assert daemon.call("containers.list", {"after": "c"}) == []
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.list", {"limit": 0})
    assert refused.value.code == "invalid_params"
