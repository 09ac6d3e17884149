"""`actord start --metrics-address`: /metrics after a known workload, parsed as Prometheus text."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from actorctl.bundle import create_bundle
from actorctl.client import DaemonError
from tests.harness import (
    ACTORD,
    Daemon,
    checked_daemon,
    free_port,
    new_state_dir,
    process_table,
    remove_state_dir,
    wait_until,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""(sample name, sorted labels) -> value."""


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def by_id(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["id"]: number for (sample, labels), number in samples.items() if sample == name}


def listening_ports(pid: int) -> set[int]:
    """TCP ports process `pid` listens on (its socket inodes, found in /proc/net/tcp and tcp6)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def limited_bundle(directory: Path, args: list[str], limit: int) -> Path:
    bundle = create_bundle(directory, args)
    config = json.loads((bundle / "config.json").read_text())
    config["linux"].setdefault("resources", {})["memory"] = {"limit": limit, "swap": limit}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.fixture
def metered(request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, int]]:
    """actord serving metrics on a free port of 127.0.0.1."""
    port = free_port()
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--metrics-address", f"127.0.0.1:{port}"]),
                            request) as daemon:
            yield daemon, port
    finally:
        remove_state_dir(state_dir)


@pytest.mark.slow
def test_metrics_count_a_known_workload(metered: tuple[Daemon, int], sleeper: Path,
                                        bundles: Callable[..., Path], tmp_path: Path) -> None:
    daemon, port = metered
    assert daemon.process is not None
    assert listening_ports(daemon.process.pid) == {port}
    limit = 64 << 20
    daemon.start_container("plain", sleeper)
    daemon.start_container("limited", limited_bundle(tmp_path / "limited", ["sleep", "100000"], limit))
    daemon.start_container("quits", bundles("sh", "-c", "exit 3"))
    daemon.start_container("oom", limited_bundle(
        tmp_path / "oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"], 16 << 20))
    with pytest.raises(DaemonError):
        daemon.start_container("broken", bundles("/no/such/program"))
    assert daemon.ctl("containers", "exec", "--attach", "plain", "--", "true").returncode == 0
    daemon.wait_events(lambda events: sum(e["type"] == "exit" for e in events) == 3)

    running = scrape(port)
    assert value(running, "actord_containers", status="running") == 2
    assert sum(number for (name, _), number in running.items() if name == "actord_containers") == 2
    memory = by_id(running, "actord_container_memory_usage_bytes")
    assert set(memory) == {"plain", "limited"} and all(used > 0 for used in memory.values())
    assert by_id(running, "actord_container_memory_limit_bytes") == {"limited": limit}  # plain has none
    assert all(count >= 1 for count in by_id(running, "actord_container_pids").values())
    assert set(by_id(running, "actord_container_pids")) == {"plain", "limited"}
    assert set(by_id(running, "actord_container_cpu_seconds_total")) == {"plain", "limited"}

    assert daemon.ctl("containers", "kill", "--signal", "KILL", "limited").returncode == 0
    events = daemon.wait_events(lambda events: sum(e["type"] == "exit" for e in events) == 4)
    samples = wait_until(lambda: (found := scrape(port)) and value(found, "actord_workers_busy") == 0 and found,
                         message="the workers to be idle")
    assert value(samples, "actord_container_starts_total") == 4
    assert value(samples, "actord_container_start_failures_total") == 1
    assert value(samples, "actord_execs_total") == 1
    assert value(samples, "actord_exec_failures_total") == 0
    assert value(samples, "actord_oom_kills_total") == 1
    assert value(samples, "actord_container_restarts_total") == 0
    exits = {(dict(labels)["process"], dict(labels)["status_class"]): number
             for (name, labels), number in samples.items() if name == "actord_process_exits_total" and number}
    assert exits == {("init", "error"): 1, ("init", "signal"): 2, ("exec", "ok"): 1}
    assert value(samples, "actord_container_start_seconds_count") == 4
    assert value(samples, "actord_exit_event_seconds_count") == 4
    assert value(samples, "actord_event_last_seq") == events[-1]["seq"]
    assert value(samples, "actord_worker_tasks_queued") == 0
    assert value(samples, "actord_workers") == 10
    assert value(samples, "actord_containers", status="running") == 1
    for name in ("actord_container_memory_usage_bytes", "actord_container_memory_limit_bytes",
                 "actord_container_cpu_seconds_total", "actord_container_pids"):
        assert set(by_id(samples, name)) <= {"plain"}, f"{name}: an exited container's gauge is left"
    assert (value(samples, "process_resident_memory_bytes") or 0) > 0
    assert (value(samples, "process_open_fds") or 0) > 0


def test_a_restarted_daemon_shows_the_containers_it_took_back(metered: tuple[Daemon, int], sleeper: Path) -> None:
    daemon, port = metered
    daemon.start_container("kept", sleeper)
    assert daemon.stop() == 0
    daemon.start()
    samples = scrape(port)
    assert value(samples, "actord_containers", status="running") == 1
    assert set(by_id(samples, "actord_container_pids")) == {"kept"}
    assert value(samples, "actord_container_starts_total") == 0, "counters are the daemon run's own"
    assert value(samples, "actord_event_last_seq") == daemon.events()[-1]["seq"]


def test_event_subscribers_are_counted(metered: tuple[Daemon, int]) -> None:
    daemon, port = metered
    context = zmq.Context()
    try:
        subscribers = [context.socket(zmq.SUB) for _ in range(2)]
        for subscriber in subscribers:
            subscriber.setsockopt(zmq.LINGER, 0)
            subscriber.connect(daemon.events_address)
        wait_until(lambda: value(scrape(port), "actord_event_subscribers") == 2, message="2 subscribers")
        subscribers.pop().close()
        wait_until(lambda: value(scrape(port), "actord_event_subscribers") == 1, message="1 subscriber")
        subscribers.pop().close()
        wait_until(lambda: value(scrape(port), "actord_event_subscribers") == 0, message="no subscriber")
    finally:
        context.term()


def test_without_the_option_nothing_listens(daemon: Daemon) -> None:
    assert daemon.process is not None
    assert listening_ports(daemon.process.pid) == set()


def start_refused(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `actord start` expected to refuse; afterwards no spawner of its state dir is left."""
    state_dir = new_state_dir()
    try:
        done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), *args],
                              capture_output=True, text=True, timeout=30)
        assert not [p for p in process_table() if p["cmdline"] == f"actor-shim-spawner {state_dir}"]
        return done
    finally:
        remove_state_dir(state_dir)


@pytest.mark.parametrize(("address", "says"), [
    ("9338", "is not HOST:PORT"), ("127.0.0.1:70000", "1 to 65535"),
    ("no-such-host.invalid:9338", "cannot listen"),
])
def test_a_bad_metrics_address_is_a_startup_error(address: str, says: str) -> None:
    done = start_refused("--metrics-address", address)
    assert done.returncode == 1, done.stderr
    assert "--metrics-address" in done.stderr and says in done.stderr


def test_a_metrics_port_in_use_is_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = start_refused("--metrics-address", f"127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert f"--metrics-address 127.0.0.1:{port}: cannot listen: Address already in use" in done.stderr
