"""actord under a service manager: sd_notify over a real datagram socket, shims and containers
that outlive a stop of the daemon's cgroup, and `health`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.cgroups import cgroup_dirs
from tests.harness import Daemon, checked_daemon, new_state_dir, pid_alive, remove_state_dir, wait_until

TRACKING = ("name=systemd", "unified")


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: it keeps every message (its
    fields, in order) and, on READY=1, asks `on_ready` at once and keeps what it answered."""

    def __init__(self, address: str | bytes, on_ready: Callable[[], Any] | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(address)
        self.sock.settimeout(0.1)
        self.on_ready = on_ready
        self.messages: list[list[str]] = []
        self.at_ready: Any = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = data.decode().split("\n")
            if "READY=1" in fields and self.on_ready is not None:
                try:
                    self.at_ready = self.on_ready()
                except Exception as exc:
                    self.at_ready = exc
            self.messages.append(fields)

    def fields(self) -> list[str]:
        return [field for message in list(self.messages) for field in message]

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self.sock.close()


def environ_of(pid: int) -> set[str]:
    """The names in a process's environment."""
    return {item.split(b"=", 1)[0].decode() for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item}


def test_sd_notify_over_a_path_socket(request: pytest.FixtureRequest, sleeper: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    state_dir = new_state_dir()
    notify_path = Path(f"{state_dir}.notify")
    try:
        with checked_daemon(Daemon(state_dir), request) as daemon:
            daemon.start_container("kept", sleeper)
            spawner = daemon.spawner_pid()
            assert daemon.stop() == 0
            wait_until(lambda: spawner is None or not pid_alive(spawner), message="the old spawner to exit")

            def listed() -> list[str]:
                with daemon.client(timeout=2) as client:
                    return [c["id"] for c in client.call("containers.list")]

            listener = NotifyListener(str(notify_path), on_ready=listed)
            try:
                monkeypatch.setenv("NOTIFY_SOCKET", str(notify_path))
                monkeypatch.setenv("WATCHDOG_USEC", "200000")
                daemon.start()
                wait_until(lambda: "READY=1" in listener.fields(), message="READY=1")
                # READY=1 came once the restored container was served, and told how many there are
                assert listener.at_ready == ["kept"]
                assert listener.messages[0] == ["STATUS=restoring containers"]
                assert ["READY=1", "STATUS=serving 1 container"] in listener.messages

                second = daemon.start_container("second", sleeper)
                wait_until(lambda: "STATUS=serving 2 containers" in listener.fields(), message="the new count")
                wait_until(lambda: listener.fields().count("WATCHDOG=1") >= 5, message="WATCHDOG=1 each 0.1 s")
                first_watchdog = listener.fields().index("WATCHDOG=1")
                assert first_watchdog > listener.fields().index("READY=1")

                # nothing below the daemon may talk to systemd: runc would hand the socket to the container
                container, shim = second["processes"][0]["system_pid"], second["processes"][0]["shim_pid"]
                for pid in (container, shim, daemon.spawner_pid()):
                    assert pid is not None
                    assert not environ_of(pid) & {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}, pid
                shown = daemon.ctl("containers", "exec", "--attach", "second", "--", "env")
                assert shown.returncode == 0 and "NOTIFY_SOCKET" not in shown.stdout

                assert "STOPPING=1" not in listener.fields()
                assert daemon.process is not None
                daemon.process.send_signal(signal.SIGTERM)
                wait_until(lambda: "STOPPING=1" in listener.fields(), message="STOPPING=1")
                assert daemon.process.wait(10) == 0
                assert not listener.fields()[listener.fields().index("STOPPING=1"):].count("READY=1")
            finally:
                listener.close()
    finally:
        notify_path.unlink(missing_ok=True)
        remove_state_dir(state_dir)


def test_sd_notify_over_an_abstract_socket(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"actord-test-{uuid.uuid4().hex}"
    listener = NotifyListener(b"\0" + name.encode())
    state_dir = new_state_dir()
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", f"@{name}")
        with checked_daemon(Daemon(state_dir), request) as daemon:
            wait_until(lambda: "READY=1" in listener.fields(), message="READY=1")
            assert daemon.stop() == 0
        wait_until(lambda: "STOPPING=1" in listener.fields(), message="STOPPING=1")
        assert "WATCHDOG=1" not in listener.fields()  # none asked for
    finally:
        listener.close()
        remove_state_dir(state_dir)


def cgroup_pids(directories: tuple[Path, ...]) -> set[int]:
    """Every process in these cgroups and their sub-cgroups."""
    found: set[int] = set()
    for top in directories:
        for directory, _, _ in os.walk(top):
            try:
                found |= {int(pid) for pid in (Path(directory) / "cgroup.procs").read_text().split()}
            except FileNotFoundError:
                pass  # removed meanwhile
    return found


@pytest.fixture
def daemon_cgroups() -> Iterator[tuple[Path, ...]]:
    """A fresh cgroup for actord in each hierarchy that tracks a service (as systemd makes one
    per unit), beside our own; removed afterwards."""
    ours = cgroup_dirs(os.getpid())
    name = f"adtest-{uuid.uuid4().hex[:8]}"
    made = tuple(ours[hierarchy] / name for hierarchy in TRACKING if hierarchy in ours)
    if not made:
        pytest.skip("no cgroup hierarchy tracks services here")
    for directory in made:
        directory.mkdir()
    try:
        yield made
    finally:
        for directory in made:
            wait_until(lambda d=directory: not cgroup_pids((d,)), message=f"{directory} to empty")  # type: ignore[misc]
            for sub, _, _ in sorted(os.walk(directory), key=lambda walked: -len(walked[0])):
                os.rmdir(sub)


def stop_like_systemd(daemon: Daemon, cgroups: tuple[Path, ...]) -> None:
    """What systemd does to a service without KillMode=process: SIGTERM to every process of its
    cgroup, wait for the main one, then SIGKILL whatever is left, sub-cgroups included."""
    assert daemon.process is not None
    for pid in cgroup_pids(cgroups):
        os.kill(pid, signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    for pid in cgroup_pids(cgroups):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not cgroup_pids(cgroups), message="the daemon's cgroup to empty")


def test_containers_survive_a_stop_of_the_daemons_cgroup(request: pytest.FixtureRequest, sleeper: Path,
                                                         daemon_cgroups: tuple[Path, ...]) -> None:
    shims_name = f"adtest-shims-{uuid.uuid4().hex[:8]}"
    shims_cgroups = [directory.parent / shims_name for directory in daemon_cgroups]
    state_dir = new_state_dir()
    try:
        daemon = Daemon(state_dir, extra_args=["--shim-cgroup", shims_name], cgroups=daemon_cgroups)
        with checked_daemon(daemon, request):
            assert daemon.process is not None and daemon.process.pid in cgroup_pids(daemon_cgroups)
            daemon.start_container("cg-a", sleeper)
            job = daemon.call("containers.exec", {"id": "cg-a", "pid": "job", "args": ["sleep", "100000"]})
            daemon.known_shims.add(job["shim_pid"])
            daemon.start_container("cg-b", sleeper)
            before = {c["id"]: c for c in daemon.call("containers.list")}
            processes = [p for c in before.values() for p in c["processes"]]
            assert len(processes) == 3
            pids = {p["system_pid"] for p in processes} | {p["shim_pid"] for p in processes}
            assert not pids & cgroup_pids(daemon_cgroups), "a shim or container is in the daemon's cgroup"
            for shim in (p["shim_pid"] for p in processes):
                assert shim in cgroup_pids(tuple(shims_cgroups))

            stop_like_systemd(daemon, daemon_cgroups)
            assert all(pid_alive(pid) for pid in pids)

            daemon.start()
            assert {c["id"]: c for c in daemon.call("containers.list")} == before
            assert [e for e in daemon.events() if e["type"] == "exit"] == []
            daemon.call("containers.signal", {"id": "cg-b", "signal": 9})
            daemon.wait_events(lambda ev: any(e["type"] == "exit" and e["id"] == "cg-b" for e in ev))
            daemon.call("containers.signal", {"id": "cg-a", "signal": 9})
            events = daemon.wait_events(lambda ev: any(e["type"] == "exit" and (e["id"], e["pid"]) == ("cg-a", "init")
                                                       for e in ev))
            exits = sorted((e["id"], e["pid"], e["status"]) for e in events if e["type"] == "exit")
            assert exits == [("cg-a", "init", 137), ("cg-a", "job", 137), ("cg-b", "init", 137)]
        assert not any(directory.exists() for directory in shims_cgroups), "the shims' cgroup outlived them"
    finally:
        remove_state_dir(state_dir)


def test_shims_stay_in_the_daemons_cgroup_with_shim_cgroup_none(request: pytest.FixtureRequest, sleeper: Path,
                                                                daemon_cgroups: tuple[Path, ...]) -> None:
    state_dir = new_state_dir()
    try:
        daemon = Daemon(state_dir, extra_args=["--shim-cgroup", "none"], cgroups=daemon_cgroups)
        with checked_daemon(daemon, request):
            started = daemon.start_container("cg-none", sleeper)["processes"][0]
            assert started["shim_pid"] in cgroup_pids(daemon_cgroups)
    finally:
        remove_state_dir(state_dir)


def test_a_shim_cgroup_inside_the_daemons_own_is_refused(daemon_cgroups: tuple[Path, ...]) -> None:
    state_dir = new_state_dir()
    try:
        for option, complaint in (("../up", "give a name"), (f"/{daemon_cgroups[0].name}/shims", "inside actord's")):
            daemon = Daemon(state_dir, extra_args=["--shim-cgroup", option], cgroups=daemon_cgroups)
            daemon.start(wait=False)
            assert daemon.process is not None and daemon.process.wait(30) == 1
            assert "--shim-cgroup" in daemon.log() and complaint in daemon.log(), daemon.log()
    finally:
        remove_state_dir(state_dir)


def health(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    done = daemon.ctl("health", "--json")
    return done.returncode, json.loads(done.stdout)


def test_health_counts_containers_and_uptime(daemon: Daemon, sleeper: Path) -> None:
    text = daemon.ctl("health")
    assert text.returncode == 0 and text.stdout.startswith("healthy: actord "), text
    daemon.start_container("h1", sleeper)
    daemon.call("containers.pause", {"id": "h1"})
    daemon.start_container("h2", sleeper)
    code, report = health(daemon)
    assert code == 0
    assert report["status"] == "healthy" and report["degraded"] == []
    assert report["containers"] == {"paused": 1, "running": 1}
    assert report["uptime"] > 0 and report["pid"] == daemon.process.pid  # type: ignore[union-attr]
    assert "2 containers (1 paused, 1 running)" in daemon.ctl("health").stdout
    version = daemon.ctl("version")
    assert version.returncode == 0 and "\nup " in version.stdout
    assert "Example" in daemon.ctl("health", "--help").stdout


def test_a_missing_runtime_binary_degrades_health(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    runtime = tmp_path / "runc"
    shutil.copy2(shutil.which("runc") or "runc", runtime)
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--runtime", str(runtime)]), request) as daemon:
            assert health(daemon)[0] == 0
            runtime.rename(tmp_path / "runc.away")
            code, report = health(daemon)
            assert code == 1 and report["status"] == "degraded"
            assert report["degraded"] == [f"the runtime {runtime} is missing or not executable: containers cannot "
                                          "be started, signalled or paused"]
            text = daemon.ctl("health")
            assert text.returncode == 1 and f"degraded: the runtime {runtime}" in text.stdout
            assert daemon.ctl("version").returncode == 1
            (tmp_path / "runc.away").rename(runtime)
            assert health(daemon)[0] == 0
    finally:
        remove_state_dir(state_dir)


def test_a_dead_spawner_is_brought_back(daemon: Daemon, sleeper: Path) -> None:
    spawner = daemon.spawner_pid()
    assert spawner is not None
    os.kill(spawner, signal.SIGKILL)
    wait_until(lambda: daemon.spawner_pid() not in (None, spawner), message="a new spawner")
    wait_until(lambda: health(daemon)[0] == 0, message="health again")
    assert daemon.start_container("after", sleeper)["processes"][0]["system_pid"] > 0
