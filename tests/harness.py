"""A real actord on a short temporary state dir, driven through actorctl and the client library."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq.auth

from actorctl.client import Client, DaemonError, Unreachable
from actors.treeremoval import remove_tree

VENV_BIN = Path(sys.executable).parent
ACTORD = str(VENV_BIN / "actord")
ACTORCTL = str(VENV_BIN / "actorctl")
NO_CONFIG = ("--config", "/dev/null")
"""An empty config file: an /etc/actord/config.toml on the machine must not change a test's actord
(a test's own --config in `extra_args` comes later, and wins)."""


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def process_table() -> list[dict[str, Any]]:
    """pid, ppid, state and command line of every process."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table.append({"pid": int(entry), "state": fields[0], "ppid": int(fields[1]), "cmdline": cmdline,
                      "comm": stat[stat.index("(") + 1:stat.rindex(")")]})
    return table


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def holds_file_under(pid: int, directory: Path) -> bool:
    """Has process `pid` a file open below `directory`?"""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{directory}/"):
                return True
        except OSError:
            continue
    return False


@dataclass
class Daemon:
    """One actord subprocess and the ways to talk to it."""

    state_dir: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    known_shims: set[int] = field(default_factory=set)
    cgroups: tuple[Path, ...] = ()
    """cgroup dirs (one per hierarchy) actord is started in, instead of ours."""

    @property
    def address(self) -> str:
        return f"ipc://{self.state_dir}/actord.sock"

    @property
    def events_address(self) -> str:
        return f"ipc://{self.state_dir}/events.sock"

    @property
    def root_dir(self) -> Path:
        """The daemon's persistent root (`--root`): beside the state dir, removed with it."""
        return Path(str(self.state_dir) + ".root")

    @property
    def runtime_root(self) -> Path:
        return self.state_dir / "runc"

    def start(self, wait: bool = True, *, cwd: Path | None = None, env: dict[str, str] | None = None,
              isolated: bool = False) -> Daemon:
        """Run actord in `cwd` with `env` (default: ours); `isolated` runs actord itself as
        `python -I`, so that a PYTHONPATH in `env` reaches only the Pythons actord starts."""
        self.log_path = Path(str(self.state_dir) + ".log")
        command = [sys.executable, "-I", ACTORD] if isolated else [ACTORD]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*command, "start", "--state-dir", str(self.state_dir), "--root", str(self.root_dir), *NO_CONFIG,
                 *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd, env=env,
                preexec_fn=self._enter_cgroups if self.cgroups else None,
            )
        if wait:
            self.wait_ready()
        return self

    def _enter_cgroups(self) -> None:
        """In the new process, before it runs actord: move into `cgroups` ("0": the writer)."""
        for directory in self.cgroups:
            (directory / "cgroup.procs").write_text("0")

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"actord exited with {self.process.returncode}:\n{self.log()}")
            try:
                with self.client(timeout=0.5) as client:
                    client.call("version")
                return True
            except (Unreachable, DaemonError, Exception):
                return False

        wait_until(ready, timeout, 0.05, "actord to answer")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.address, timeout)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> Any:
        with self.client(timeout) as client:
            return client.call(method, params)

    def ctl(self, *args: str, timeout: float = 60.0, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, ACTORD_ADDRESS=self.address)
        return subprocess.run([ACTORCTL, *args], capture_output=True, text=True, timeout=timeout,
                              env=env, input=input.decode() if input else None)

    def events(self, after: int = 0, container_id: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"after": after}
        if container_id:
            params["id"] = container_id
        events: list[dict[str, Any]] = self.call("events.replay", params)["events"]
        return events

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0,
                    container_id: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = self.events(container_id=container_id)
            return predicate(found)

        try:
            wait_until(check, timeout, 0.05, "events")
        except AssertionError:
            shown = [(e["seq"], e["type"], e["id"], e["pid"], e["status"]) for e in found[-10:]]
            raise AssertionError(f"timed out waiting for events; {len(found)} so far, the last: {shown}\n"
                                 f"--- actord log ---\n{self.log()}") from None
        return found

    def start_container(self, container_id: str, bundle: Path, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call("containers.start", {"id": container_id, "bundle": str(bundle), **params})
        for process in result["processes"]:
            self.known_shims.add(process["shim_pid"])
        return result

    def spawner_pid(self) -> int | None:
        assert self.process is not None
        for proc in process_table():
            if proc["ppid"] == self.process.pid and proc["cmdline"].startswith("actor-shim-spawner"):
                pid: int = proc["pid"]
                return pid
        return None

    def our_pids(self) -> set[int]:
        """actord, its spawner, and every shim the spawner has (or the test started)."""
        assert self.process is not None
        pids = {self.process.pid}
        spawner = self.spawner_pid()
        if spawner:
            pids.add(spawner)
        for proc in process_table():
            if proc["ppid"] in pids and proc["cmdline"].startswith("actor-shim"):
                pids.add(proc["pid"])
        return pids | {pid for pid in self.known_shims if pid_alive(pid)}

    def zombies(self) -> list[dict[str, Any]]:
        """Zombies whose parent is actord, the spawner or a shim: ours to reap."""
        ours = self.our_pids()
        return [p for p in process_table() if p["state"] == "Z" and p["ppid"] in ours]

    def runc_containers(self) -> list[dict[str, Any]]:
        if not self.runtime_root.exists():
            return []
        def listed() -> subprocess.CompletedProcess[str] | None:
            done = subprocess.run(["runc", "--root", str(self.runtime_root), "list", "--format", "json"],
                                  capture_output=True, text=True)
            return done if done.returncode == 0 else None  # runc list fails on a container being deleted

        done = wait_until(listed, 5, 0.05, "runc list to succeed")
        return json.loads(done.stdout or "null") or []

    def live_shims(self) -> list[int]:
        """Shims of this daemon alive now: those the test saw, those its spawner has, and any shim
        holding a file in this state dir (its output log). Shims of other test runs are not ours."""
        spawner = self.spawner_pid() if self.process is not None else None
        titled = [p for p in process_table() if p["state"] != "Z" and p["cmdline"].startswith("actor-shim ")]
        ours = {p["pid"] for p in titled if p["ppid"] == spawner or holds_file_under(p["pid"], self.state_dir)}
        return sorted(ours | {pid for pid in self.known_shims if pid_alive(pid)})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill_everything(self) -> None:
        """Force every container of this state dir down and wait for its shim to go."""
        for container in self.runc_containers():
            subprocess.run(["runc", "--root", str(self.runtime_root), "delete", "--force", container["id"]],
                           capture_output=True)
        wait_until(lambda: not self.live_shims(), 15, 0.05, "shims to exit")


def free_port() -> int:
    """A TCP port of 127.0.0.1 free now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Certificates:
    """CURVE certificates for a daemon on the network (see the `certificates` fixture)."""

    server: tuple[Path, Path]
    client: tuple[Path, Path]
    intruder: tuple[Path, Path]
    """Each (public .key, .key_secret)."""
    authorized: Path
    """Holds the client's public key only."""

    @classmethod
    def make(cls, directory: Path) -> Certificates:
        def pair(name: str) -> tuple[Path, Path]:
            (directory / name).mkdir()
            public, secret = zmq.auth.create_certificates(directory / name, name)
            return Path(public), Path(secret)

        server, client, intruder = pair("server"), pair("client"), pair("intruder")
        authorized = directory / "authorized"
        authorized.mkdir()
        (authorized / "client.key").write_bytes(client[0].read_bytes())
        return cls(server, client, intruder, authorized)


def new_state_dir() -> Path:
    """A short state dir: ipc socket paths must stay under 107 bytes."""
    return Path(tempfile.mkdtemp(prefix="ad-", dir="/tmp"))


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` (a container's rootfs bind mount, a test's tmpfs)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(path) or point.startswith(f"{path}/"):
            found.append(point)
    return found


def remove_state_dir(path: Path) -> None:
    """Detach what is still mounted below the state dir first: a delete must not reach into a rootfs."""
    root = Path(str(path) + ".root")
    for point in sorted(mounts_under(path) + mounts_under(root), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    remove_filled_tree(path)
    remove_filled_tree(root)
    Path(str(path) + ".log").unlink(missing_ok=True)


def remove_filled_tree(path: Path) -> None:
    """Remove a tree a test's containers and images may have filled (any depth, symlinks); what
    cannot go (a mount point) stays."""
    with contextlib.suppress(OSError):
        remove_tree(path, missing_ok=True)


@contextlib.contextmanager
def checked_daemon(instance: Daemon, request: Any,
                   own_mounts: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """Start `instance`; afterwards: no container, shim, zombie or mount (but `own_mounts`) left,
    the daemon and its spawner gone, and the daemon's log shown if the test failed."""
    instance.start()
    try:
        yield instance
        # a child is a zombie for a moment between its exit and its reaping: only a lasting one is a leak
        wait_until(lambda: instance.zombies() == [], 5, 0.05, "no zombies under actord or its shims")
    finally:
        report = getattr(request.node, "report_call", None)
        if report is None or report.failed:
            print(f"--- actord log ---\n{instance.log()}")
        try:
            instance.kill_everything()
            spawner = instance.spawner_pid()
            assert instance.stop() == 0, instance.log()
            assert instance.runc_containers() == []
            assert instance.live_shims() == []
            assert mounts_under(instance.state_dir) == list(own_mounts), "a rootfs mount outlived its container"
            if spawner:
                assert not pid_alive(spawner), "the shim spawner outlived actord"
        finally:
            remove_filled_tree(instance.root_dir)
            if instance.process and instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait()
            for container in instance.runc_containers():
                subprocess.run(["runc", "--root", str(instance.runtime_root), "delete", "--force",
                                container["id"]], capture_output=True)
