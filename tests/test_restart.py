"""Restart policies and the persistent root: restarts with back-off, explicit stops, `rm`,
a daemon killed during a back-off, and a reboot that wipes the state dir but keeps the root."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorctl.bundle import create_bundle
from actorctl.client import DaemonError
from tests.harness import (
    Daemon,
    checked_daemon,
    mounts_under,
    new_state_dir,
    pid_alive,
    remove_state_dir,
    wait_until,
)

DELAY = 0.3
"""--restart-delay of these tests: long enough to measure, short enough to wait for."""
FAILING = ("sh", "-c", "sleep 0.2; exit 3")
SLEEPER = ("sleep", "100000")


@pytest.fixture
def restarting(request: pytest.FixtureRequest) -> Iterator[Daemon]:
    """A running actord with a short restart back-off; afterwards as `daemon` (every container
    the policies keep removed first, so that nothing comes back while it is checked)."""
    state_dir = new_state_dir()
    instance = Daemon(state_dir, ["--restart-delay", str(DELAY), "--restart-delay-max", "5"])
    try:
        with checked_daemon(instance, request):
            try:
                yield instance
            finally:
                remove_all(instance)
    finally:
        remove_state_dir(state_dir)


def remove_all(daemon: Daemon) -> None:
    """`rm --force` every container, whatever its policy and status."""
    def gone() -> bool:
        for container in daemon.call("containers.list"):
            try:
                daemon.call("containers.remove", {"id": container["id"], "force": True})
            except DaemonError:
                pass  # a restart's start under way: the next round sees it running
        return not daemon.call("containers.list")

    wait_until(gone, 20, 0.05, "every container removed")


def of(daemon: Daemon, container_id: str, after: int = 0) -> list[dict[str, Any]]:
    return [e for e in daemon.events(after) if e["id"] == container_id]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def status(daemon: Daemon, container_id: str) -> str:
    result: str = daemon.call("containers.state", {"id": container_id})["status"]
    return result


def test_on_failure_restarts_exactly_max_times_with_growing_delays(restarting: Daemon,
                                                                   bundles: Callable[..., Path]) -> None:
    daemon = restarting
    started = daemon.start_container("flaky", bundles(*FAILING), restart="on-failure:3")
    assert started["restart"] == {"policy": "on-failure:3", "count": 0, "next_attempt": None, "last_status": None}
    wait_until(lambda: status(daemon, "flaky") == "stopped", 30, 0.05, "the policy to give up")
    events = of(daemon, "flaky")
    assert kinds(events) == ["start-container", "exit", "restart"] * 3 + ["start-container", "exit"]
    restarts = [e for e in events if e["type"] == "restart"]
    assert [(e["attempt"], e["status"]) for e in restarts] == [(1, 3), (2, 3), (3, 3)]
    state = daemon.call("containers.state", {"id": "flaky"})
    assert state["restart"] == {"policy": "on-failure:3", "count": 3, "next_attempt": None, "last_status": 3}
    assert state["processes"] == []
    # each wait from an exit to the next start is the back-off: DELAY, then twice, then four times
    exits = [e["timestamp"] for e in events if e["type"] == "exit"]
    starts = [e["timestamp"] for e in events if e["type"] == "start-container"][1:]
    waits = [start - exit_ for exit_, start in zip(exits, starts, strict=False)]
    for n, wait in enumerate(waits):
        assert wait >= DELAY * 2**n * 0.9, waits
    assert waits[2] > waits[0] + DELAY, waits
    definition = daemon.root_dir / "containers" / "flaky" / "definition.json"
    assert definition.is_file()
    shown = daemon.ctl("containers", "state", "flaky")
    assert "restart: on-failure:3, 3 so far, last exit 3" in shown.stdout, shown.stdout
    done = daemon.ctl("containers", "rm", "flaky")
    assert done.returncode == 0, done.stderr
    assert daemon.call("containers.list") == [] and not definition.parent.exists()


def test_always_restarts_after_any_exit_but_an_explicit_stop(restarting: Daemon, bundles: Callable[..., Path]) -> None:
    """As docker's: `always` restarts whatever the exit; `containers kill` stops it (and `rm` then
    removes it), as `docker stop` does."""
    daemon = restarting
    daemon.start_container("phoenix", bundles("sh", "-c", "sleep 0.3"), restart="always")
    daemon.wait_events(lambda ev: [e["attempt"] for e in ev if e["type"] == "restart"] == [1, 2],
                       container_id="phoenix")
    wait_until(lambda: status(daemon, "phoenix") == "running", 10, 0.02, "the third life")
    init = daemon.call("containers.state", {"id": "phoenix"})["processes"][0]
    assert daemon.ctl("containers", "kill", "--signal", "KILL", "phoenix").returncode == 0
    wait_until(lambda: status(daemon, "phoenix") == "stopped", 10, 0.02, "the killed one kept stopped")
    assert kinds(of(daemon, "phoenix"))[-2:] == ["start-container", "exit"]
    assert sum(e["type"] == "restart" for e in of(daemon, "phoenix")) == 2, "a kill is no reason to restart"
    done = daemon.ctl("containers", "rm", "phoenix")
    assert done.returncode == 0, done.stderr
    assert daemon.call("containers.list") == []
    assert not pid_alive(init["system_pid"]) and not pid_alive(init["shim_pid"])
    assert not (daemon.root_dir / "containers" / "phoenix").exists()


def test_unless_stopped_restarts_a_crash_but_not_a_kill(restarting: Daemon, bundles: Callable[..., Path]) -> None:
    daemon = restarting
    daemon.start_container("steady", bundles(*FAILING), restart="unless-stopped")
    daemon.wait_events(lambda ev: "restart" in kinds(ev), container_id="steady")
    daemon.start_container("obedient", bundles(*SLEEPER), restart="unless-stopped")
    daemon.start_container("partial", bundles(*SLEEPER), restart="on-failure")
    for container_id in ("obedient", "partial"):
        assert daemon.ctl("containers", "kill", "--signal", "KILL", container_id).returncode == 0
    wait_until(lambda: {status(daemon, c) for c in ("obedient", "partial")} == {"stopped"}, 10, 0.05,
               "the killed ones kept stopped")
    for container_id in ("obedient", "partial"):
        assert "restart" not in kinds(of(daemon, container_id))
    refused = daemon.ctl("containers", "kill", "obedient")
    assert refused.returncode == 1 and "is stopped" in refused.stderr
    again = daemon.ctl("containers", "start", "obedient", str(bundles(*SLEEPER)))
    assert again.returncode == 1 and "containers rm obedient" in again.stderr


def test_a_hup_is_no_stop_and_an_oom_kill_is_a_failure(restarting: Daemon, bundles: Callable[..., Path],
                                                        tmp_path: Path) -> None:
    daemon = restarting
    trap = bundles("sh", "-c", 'trap "exit 0" HUP; while true; do sleep 0.1; done')
    daemon.start_container("reloaded", trap, restart="on-failure")
    daemon.call("containers.signal", {"id": "reloaded", "signal": int(signal.SIGHUP)})
    wait_until(lambda: status(daemon, "reloaded") == "stopped", 10, 0.05, "exit 0: no failure, kept stopped")
    # the OOM killer takes a child; the init itself exits 0
    bundle = create_bundle(tmp_path / "oom", ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; exit 0"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"].setdefault("resources", {})["memory"] = {"limit": 16 << 20, "swap": 16 << 20}
    (bundle / "config.json").write_text(json.dumps(config))
    daemon.start_container("hungry", bundle, restart="on-failure:1")
    events = daemon.wait_events(lambda ev: "restart" in kinds(ev), container_id="hungry")
    assert kinds(events)[:4] == ["start-container", "oom", "exit", "restart"]
    assert next(e["status"] for e in events if e["type"] == "exit") == 0


def test_rm_refuses_a_running_container_and_start_refuses_a_bad_policy(restarting: Daemon,
                                                                        bundles: Callable[..., Path]) -> None:
    daemon = restarting
    daemon.start_container("busy", bundles(*SLEEPER), restart="always")
    refused = daemon.ctl("containers", "rm", "busy")
    assert refused.returncode == 1 and "kill it first" in refused.stderr
    for policy, complaint in (("sometimes", "unknown restart policy"), ("always:3", "takes no count"),
                              ("on-failure:0", "count from 1")):
        bad = daemon.ctl("containers", "start", "--restart", policy, "other", str(bundles(*SLEEPER)))
        assert bad.returncode == 1 and complaint in bad.stderr, bad.stderr
    unknown = daemon.ctl("containers", "rm", "nobody")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    assert [c["id"] for c in daemon.call("containers.list")] == ["busy"]


@pytest.mark.slow
def test_policy_and_count_survive_a_daemon_killed_during_back_off(request: pytest.FixtureRequest,
                                                                  bundles: Callable[..., Path]) -> None:
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, ["--restart-delay", "2", "--restart-delay-max", "2"])
    try:
        with checked_daemon(daemon, request):
            try:
                daemon.start_container("patient", bundles(*FAILING), restart="on-failure:2")
                daemon.wait_events(lambda ev: "restart" in kinds(ev), container_id="patient")
                before = daemon.call("containers.state", {"id": "patient"})
                assert before["status"] == "restarting" and before["restart"]["count"] == 0
                daemon.stop(signal.SIGKILL)
                daemon.start()
                after = daemon.call("containers.state", {"id": "patient"})
                assert after["status"] in ("restarting", "running")
                assert after["restart"]["policy"] == "on-failure:2"
                assert after["restart"]["next_attempt"] in (before["restart"]["next_attempt"], None)
                wait_until(lambda: status(daemon, "patient") == "stopped", 30, 0.1, "both restarts, then stopped")
                events = of(daemon, "patient")
                assert [e["attempt"] for e in events if e["type"] == "restart"] == [1, 2]
                assert kinds(events).count("start-container") == 3
                assert daemon.call("containers.state", {"id": "patient"})["restart"]["count"] == 2
            finally:
                remove_all(daemon)
    finally:
        remove_state_dir(state_dir)


@pytest.mark.slow
def test_a_reboot_brings_back_exactly_the_containers_whose_policy_says_so(request: pytest.FixtureRequest,
                                                                          bundles: Callable[..., Path]) -> None:
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, ["--restart-delay", str(DELAY)])
    sleeper = bundles(*SLEEPER)
    try:
        with checked_daemon(daemon, request):
            try:
                for container_id, policy in (("always", "always"), ("unless", "unless-stopped"),
                                             ("stopped", "unless-stopped"), ("killed", "always"),
                                             ("failing", "on-failure"), ("plain", "no")):
                    daemon.start_container(container_id, sleeper, restart=policy)
                for container_id in ("stopped", "killed"):
                    daemon.call("containers.signal", {"id": container_id, "signal": 9})
                wait_until(lambda: {status(daemon, c) for c in ("stopped", "killed")} == {"stopped"}, 10, 0.05,
                           "the killed ones stopped")
                seq = daemon.events()[-1]["seq"]
                shims = {p["shim_pid"] for c in daemon.call("containers.list") for p in c["processes"]}
                # the reboot: the daemon stops, every container and shim dies, /run is wiped
                assert daemon.stop() == 0
                daemon.kill_everything()
                wait_until(lambda: not any(pid_alive(pid) for pid in shims), 10, 0.05, "the shims gone")
                for point in sorted(mounts_under(state_dir), reverse=True):
                    subprocess.run(["umount", "-l", point], check=True)
                subprocess.run(["rm", "-rf", "--one-file-system", str(state_dir)], check=True)
                daemon.start()
                wait_until(lambda: {c["id"]: c["status"] for c in daemon.call("containers.list")} == {
                    "always": "running", "unless": "running", "killed": "running", "stopped": "stopped",
                    "failing": "stopped"}, 15, 0.05, "the policies applied")
                events = daemon.events()
                assert events[0]["seq"] > seq, "the numbering goes on from the root's high-water mark"
                assert sorted((e["id"], e["attempt"], e["status"]) for e in events if e["type"] == "restart") == [
                    ("always", 1, None), ("killed", 1, None), ("unless", 1, None)]
                assert sorted(e["id"] for e in events if e["type"] == "start-container") == ["always", "killed",
                                                                                              "unless"]
            finally:
                remove_all(daemon)
    finally:
        remove_state_dir(state_dir)


def test_rm_force_kills_and_removes_a_running_container_whatever_its_policy(restarting: Daemon,
                                                                           bundles: Callable[..., Path]) -> None:
    """`rm --force` (docker's `rm -f`): running under `always`, paused, or under no policy, each is
    killed and gone when the command returns, its exit on record, its definition deleted, its id free."""
    daemon = restarting
    sleeper = bundles(*SLEEPER)
    inits = {}
    for container_id, policy in (("immortal", "always"), ("frozen", "unless-stopped"), ("plain", "no")):
        inits[container_id] = daemon.start_container(container_id, sleeper, restart=policy)["processes"][0]
    daemon.call("containers.pause", {"id": "frozen"})
    for container_id in inits:
        done = daemon.ctl("containers", "rm", "--force", container_id)
        assert done.returncode == 0, done.stderr
        assert ("exit", "init", 137) in [(e["type"], e["pid"], e["status"]) for e in of(daemon, container_id)]
        assert container_id not in {c["id"] for c in daemon.call("containers.list")}
        assert not (daemon.root_dir / "containers" / container_id).exists()
    pids = [pid for init in inits.values() for pid in (init["system_pid"], init["shim_pid"])]
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), message="the killed processes and their shims gone")
    assert "restart" not in kinds(daemon.events())
    again = daemon.start_container("immortal", sleeper, restart="always")
    assert again["status"] == "running"
    with daemon.client() as client:
        client.remove("immortal", force=True)
    assert daemon.call("containers.list") == []
    unknown = daemon.ctl("containers", "rm", "--force", "nobody")
    assert unknown.returncode == 1 and "not found" in unknown.stderr


@pytest.mark.slow
def test_a_daemon_restart_brings_back_a_stopped_always_container_but_not_an_unless_stopped_one(
        request: pytest.FixtureRequest, bundles: Callable[..., Path]) -> None:
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, ["--restart-delay", str(DELAY)])
    try:
        with checked_daemon(daemon, request):
            try:
                for container_id, policy in (("always", "always"), ("unless", "unless-stopped")):
                    daemon.start_container(container_id, bundles(*SLEEPER), restart=policy)
                    assert daemon.ctl("containers", "kill", "--signal", "KILL", container_id).returncode == 0
                wait_until(lambda: {c["id"]: c["status"] for c in daemon.call("containers.list")} == {
                    "always": "stopped", "unless": "stopped"}, 10, 0.05, "both kept stopped")
                seq = daemon.events()[-1]["seq"]
                assert daemon.stop() == 0
                daemon.start()
                wait_until(lambda: {c["id"]: c["status"] for c in daemon.call("containers.list")} == {
                    "always": "running", "unless": "stopped"}, 15, 0.05, "the stopped always container back")
                assert [(e["id"], e["type"], e.get("attempt")) for e in daemon.events(seq)] == [
                    ("always", "restart", 1), ("always", "start-container", None)]
            finally:
                remove_all(daemon)
    finally:
        remove_state_dir(state_dir)
