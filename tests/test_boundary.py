"""The container boundary, tried as an attacker would: real actord, real runc containers.

Nothing of the host inside a container's PID namespace, no signal to a number a
container could have chosen, `--init`, a bundle read once, no symlink followed
in checkpoints or in `bundle create`.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actorctl.bundle import create_bundle
from actorctl.client import DaemonError
from tests.harness import (
    ACTORCTL,
    Daemon,
    checked_daemon,
    new_state_dir,
    pid_alive,
    process_table,
    remove_state_dir,
    wait_until,
)
from tests.test_restart import remove_all

SHELL_LOOP = ("sh", "-c", 'trap "exit 0" TERM; while true; do sleep 0.2; done')
HOST_MARKERS = ("actor", "runc", "shim", "/tmp/", "/run/", "python")


def exits(daemon: Daemon) -> list[tuple[str, str, int]]:
    return [(e["id"], e["pid"], e["status"]) for e in daemon.events() if e["type"] == "exit"]


def attached_exec(daemon: Daemon, container_id: str, *command: str) -> subprocess.CompletedProcess[str]:
    return daemon.ctl("containers", "exec", "--attach", container_id, "--", *command)


def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_ps_in_a_container_shows_nothing_of_the_host(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("box", bundles(*SHELL_LOOP))
    for n in range(3):
        process = daemon.call("containers.exec", {"id": "box", "pid": f"long{n}", "args": ["sleep", "1000"]})
        daemon.known_shims.add(process["shim_pid"])
    results: list[subprocess.CompletedProcess[str]] = []

    def starts() -> None:  # more execs start while `ps` runs
        for _ in range(5):
            results.append(attached_exec(daemon, "box", "true"))

    racer = threading.Thread(target=starts)
    racer.start()
    during = attached_exec(daemon, "box", "sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do ps -o pid,args; done")
    racer.join()
    after = attached_exec(daemon, "box", "ps", "-o", "pid,args")
    assert during.returncode == 0 and after.returncode == 0, during.stderr + after.stderr
    assert all(r.returncode == 0 for r in results)
    for line in during.stdout.splitlines():
        if "runc init" in line:
            continue  # runc's own setup of a starting exec, before it becomes the exec'd program
        assert not any(marker in line for marker in HOST_MARKERS), line
    listed = [line.split(None, 1)[1] for line in after.stdout.splitlines()[1:]]
    expected = ["ps -o pid,args", " ".join(SHELL_LOOP), *["sleep 1000"] * 3]
    assert sorted(args for args in listed if args != "sleep 0.2") == sorted(expected), after.stdout


def test_signals_from_inside_reach_nothing_outside(daemon: Daemon, bundles: Callable[..., Path]) -> None:
    daemon.start_container("box", bundles(*SHELL_LOOP))
    process = daemon.call("containers.exec", {"id": "box", "pid": "victim", "args": ["sleep", "1000"]})
    daemon.known_shims.add(process["shim_pid"])
    ours = daemon.our_pids() - {process["shim_pid"]}  # the victim's shim ends with it
    attacker = ('for p in /proc/[0-9]*; do p=${p#/proc/}; [ "$p" = "$$" ] && continue; '
                'kill -STOP "$p"; kill -KILL "$p"; done 2>/dev/null; true')
    done = attached_exec(daemon, "box", "sh", "-c", attacker)
    assert done.returncode == 0, done.stderr
    daemon.wait_events(lambda ev: ("box", "victim", 137) in exits(daemon))
    for pid in ours:
        assert pid_alive(pid) and process_state(pid) != "T", f"host process {pid} was hit from the container"
    [container] = daemon.call("containers.list")
    assert container["status"] == "running" and [p["pid"] for p in container["processes"]] == ["init"]


@pytest.fixture
def lying_runtime(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Path]]:
    """actord with a runtime whose `exec` really runs, then names another process in its pid file."""
    victim_file = tmp_path / "victim.pid"
    wrapper = tmp_path / "runtime"
    wrapper.write_text(f"""#!/bin/sh
runc "$@"; status=$?
case " $* " in
  *" exec "*) while [ "$1" != "--pid-file" ]; do shift; done; cat {victim_file} > "$2" ;;
esac
exit $status
""")
    wrapper.chmod(0o755)
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, extra_args=["--runtime", str(wrapper)]), request) as daemon:
            yield daemon, victim_file
    finally:
        remove_state_dir(state_dir)


def test_a_failed_exec_kills_nothing_on_the_host(lying_runtime: tuple[Daemon, Path],
                                                 bundles: Callable[..., Path]) -> None:
    daemon, victim_file = lying_runtime
    host = subprocess.Popen(["sleep", "1000"])
    try:
        victim_file.write_text(f"{host.pid}\n")
        daemon.start_container("box", bundles(*SHELL_LOOP))
        with pytest.raises(DaemonError) as failed:
            daemon.call("containers.exec", {"id": "box", "pid": "liar", "args": ["sleep", "4242"]})
        assert failed.value.code == "runtime_error" and "pid file" in failed.value.message
        assert host.poll() is None, "a host process named by the pid file was killed"
        wait_until(lambda: not [p for p in process_table() if p["cmdline"] == "sleep 4242"],
                   message="the exec'd process of the failed start to be killed")
        [container] = daemon.call("containers.list")
        assert [p["pid"] for p in container["processes"]] == ["init"]
    finally:
        host.kill()
        host.wait()


def test_orphans_of_an_exec_go_to_the_containers_init(daemon: Daemon, sleeper: Path) -> None:
    """Without --init a `sleep` init never reaps them, as with runc and containerd: no host process adopts them."""
    init = daemon.start_container("top", sleeper)["processes"][0]["system_pid"]
    daemon.call("containers.exec", {"id": "top", "pid": "sh", "args": ["sh"], "stdin": True})
    daemon.call("containers.stdin", {"id": "top", "pid": "sh", "data": b"sleep 1000 &\nsleep 0.3 &\nexit\n"})
    daemon.wait_events(lambda ev: ("top", "sh", 0) in exits(daemon))
    orphans = wait_until(lambda: [p for p in process_table() if p["cmdline"] in ("sleep 1000", "sleep 0.3")
                                  or (p["comm"] == "sleep" and p["state"] == "Z")], message="orphans")
    wait_until(lambda: all(p["ppid"] == init for p in process_table() if p["pid"] in {o["pid"] for o in orphans}),
               message="the orphans to be the init's")


def test_init_reaps_orphans_and_passes_on_the_status(daemon: Daemon, sleeper: Path,
                                                     bundles: Callable[..., Path]) -> None:
    started = daemon.ctl("containers", "start", "--init", "top", str(sleeper))
    assert started.returncode == 0, started.stderr
    state = json.loads(daemon.ctl("containers", "state", "--json", "top").stdout)
    assert state["init"] is True and state["processes"][0]["args"][:2] == ["/dev/init", "--"]
    daemon.known_shims.add(state["processes"][0]["shim_pid"])
    ps = attached_exec(daemon, "top", "ps", "-o", "pid,args")
    assert "1 /dev/init -- sleep 100000" in ps.stdout, ps.stdout
    daemon.call("containers.exec", {"id": "top", "pid": "sh", "args": ["sh"], "stdin": True})
    daemon.call("containers.stdin", {"id": "top", "pid": "sh", "data": b"sleep 1000 &\nsleep 0.3 &\nexit\n"})
    daemon.wait_events(lambda ev: ("top", "sh", 0) in exits(daemon))

    def no_defunct() -> bool:
        return not [p for p in process_table() if p["state"] == "Z" and p["comm"] in ("sleep", "sh")]

    wait_until(lambda: not [p for p in process_table() if p["cmdline"] == "sleep 0.3"], message="sleep 0.3 to end")
    wait_until(no_defunct, timeout=5, message="no <defunct> processes")
    assert daemon.call("containers.signal", {"id": "top", "signal": 15}) == {}
    daemon.wait_events(lambda ev: ("top", "init", 143) in exits(daemon))  # tini forwards TERM to `sleep`
    quitter = bundles("sh", "-c", "exit 7")
    assert daemon.ctl("containers", "start", "--init", "seven", str(quitter)).returncode == 0
    daemon.wait_events(lambda ev: ("seven", "init", 7) in exits(daemon))


def test_init_needs_a_dev_tmpfs_and_never_writes_the_rootfs(daemon: Daemon, tmp_path: Path) -> None:
    bundle = create_bundle(tmp_path / "b", ["sleep", "1000"])
    config = json.loads((bundle / "config.json").read_text())
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]
    (bundle / "config.json").write_text(json.dumps(config))
    refused = daemon.ctl("containers", "start", "--init", "nodev", str(bundle))
    assert refused.returncode == 1 and "tmpfs on /dev" in refused.stderr
    assert not (bundle / "rootfs" / "dev" / "init").exists()
    assert daemon.call("containers.list") == []


def test_the_bundle_is_read_once(daemon: Daemon, tmp_path: Path) -> None:
    bundle = create_bundle(tmp_path / "b", list(SHELL_LOOP))
    daemon.start_container("once", bundle)
    probe = ("sh", "-c", 'echo "evil=$EVIL uid=$(id -u) caps=$(grep CapEff /proc/self/status)"')
    seen = attached_exec(daemon, "once", *probe)
    assert seen.returncode == 0 and seen.stdout.startswith("evil= uid=0 caps=CapEff:"), seen.stdout
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["env"].append("EVIL=1")
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {key: [] for key in config["process"]["capabilities"]}
    (bundle / "config.json").write_text(json.dumps(config))
    assert attached_exec(daemon, "once", *probe).stdout == seen.stdout
    (bundle / "config.json").write_text("garbage {")
    assert attached_exec(daemon, "once", *probe).stdout == seen.stdout
    moved = tmp_path / "moved"
    bundle.rename(moved)
    assert attached_exec(daemon, "once", *probe).stdout == seen.stdout
    spawner = daemon.spawner_pid()
    daemon.stop()
    wait_until(lambda: spawner is None or not pid_alive(spawner), message="the old spawner to exit")
    daemon.start()
    [container] = daemon.call("containers.list")
    assert container["id"] == "once" and container["status"] == "running" and container["bundle"] == str(bundle)
    assert attached_exec(daemon, "once", *probe).stdout == seen.stdout
    assert "discarding container" not in daemon.log()


@pytest.fixture
def gated_runtime(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Daemon, Path, Path]]:
    """actord with one worker and a runtime that holds the `create` of container `blocker` until
    the gate file exists (it touches `held` first): the worker stays busy, and the next start
    waits in the queue, after the Supervisor has taken the request in, before a worker reads
    the bundle. Yields the daemon, `held` and the gate."""
    held, gate = tmp_path / "held", tmp_path / "gate"
    wrapper = tmp_path / "runtime"
    wrapper.write_text(f"""#!/bin/sh
case " $* " in
  *" create "*" blocker ") touch {held}; while [ ! -e {gate} ]; do sleep 0.02; done ;;
esac
exec runc "$@"
""")
    wrapper.chmod(0o755)
    state_dir = new_state_dir()
    try:
        with checked_daemon(Daemon(state_dir, ["--workers", "1", "--runtime", str(wrapper)]), request) as daemon:
            try:
                yield daemon, held, gate
            finally:
                gate.touch()
                remove_all(daemon)  # `always` would bring a killed container back
    finally:
        remove_state_dir(state_dir)


def init_args(daemon: Daemon, container_id: str) -> list[str]:
    [process] = daemon.call("containers.state", {"id": container_id})["processes"]
    return list(process["args"])


def test_a_restart_policy_keeps_the_config_bytes_the_start_read(gated_runtime: tuple[Daemon, Path, Path],
                                                                 sleeper: Path, tmp_path: Path) -> None:
    """The root's config.json (what every restart runs) is the very config the first start read and
    ran, even when the bundle's file is replaced between the request and the worker's read."""
    daemon, held, gate = gated_runtime
    bundle = create_bundle(tmp_path / "kept", ["sleep", "100001"])
    env = dict(os.environ, ACTORD_ADDRESS=daemon.address)
    starts = [subprocess.Popen([ACTORCTL, "containers", "start", "blocker", str(sleeper)], env=env)]
    try:
        wait_until(held.exists, message="the one worker to be held in the blocker's create")
        starts.append(subprocess.Popen([ACTORCTL, "containers", "start", "--restart", "always", "kept", str(bundle)],
                                       env=env))
        definition = daemon.root_dir / "containers" / "kept" / "definition.json"
        wait_until(definition.exists, message="the Supervisor to take the start of `kept` in")
        replaced = create_bundle(tmp_path / "other", ["sleep", "100002"]) / "config.json"
        replaced.rename(bundle / "config.json")  # the owner of the bundle changes it before any worker read it
        ran = (bundle / "config.json").read_bytes()
        gate.touch()
        assert [start.wait(30) for start in starts] == [0, 0]
    finally:
        gate.touch()
        for start in starts:
            start.wait(30)
    assert init_args(daemon, "kept") == ["sleep", "100002"]  # what the worker read
    assert (daemon.root_dir / "containers" / "kept" / "config.json").read_bytes() == ran
    os.kill(daemon.call("containers.state", {"id": "kept"})["processes"][0]["system_pid"], 9)  # a crash, no stop
    wait_until(lambda: daemon.call("containers.state", {"id": "kept"})["restart"]["count"] == 1
               and daemon.call("containers.state", {"id": "kept"})["status"] == "running",
               message="`kept` restarted")
    assert init_args(daemon, "kept") == ["sleep", "100002"]  # a restart runs what the first start ran


def test_checkpoints_never_follow_a_symlink(daemon: Daemon, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "cp1").mkdir(parents=True)
    (victim / "cp1" / "precious").write_text("keep me")
    (victim / "cp1" / "actord-checkpoint.json").write_text('{"name": "cp1"}')
    linked = create_bundle(tmp_path / "linked", ["sleep", "1000"])
    (linked / "checkpoints").symlink_to(victim)
    daemon.start_container("linked", linked)
    for command in (["delete", "linked", "cp1"], ["list", "linked"], ["create", "linked", "cp9"]):
        refused = daemon.ctl("checkpoints", *command)
        assert refused.returncode == 1 and "symlink" in refused.stderr, (command, refused.stderr)
    assert (victim / "cp1" / "precious").read_text() == "keep me" and not (victim / "cp9").exists()

    inner = create_bundle(tmp_path / "inner", ["sleep", "1000"])
    (inner / "checkpoints").mkdir()
    (inner / "checkpoints" / "cp1").symlink_to(victim / "cp1")
    (inner / "checkpoints" / "foreign").mkdir()
    (inner / "checkpoints" / "foreign" / "data").write_text("not ours")
    daemon.start_container("inner", inner)
    refused = daemon.ctl("checkpoints", "delete", "inner", "cp1")
    assert refused.returncode == 1 and "symlink" in refused.stderr
    foreign = daemon.ctl("checkpoints", "delete", "inner", "foreign")
    assert foreign.returncode == 1 and "not a checkpoint actord made" in foreign.stderr
    assert (victim / "cp1" / "precious").read_text() == "keep me"
    assert (inner / "checkpoints" / "foreign" / "data").read_text() == "not ours"
    assert daemon.ctl("checkpoints", "list", "inner").stdout == ""
    restore = daemon.ctl("containers", "start", "--checkpoint", "cp1", "again", str(inner))
    assert restore.returncode == 1 and "symlink" in restore.stderr


def test_bundle_create_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "shadow"
    victim.write_text("root:secret\n")
    victim_dir = tmp_path / "hostdir"
    victim_dir.mkdir()
    (victim_dir / "file").write_text("host data")
    bundle = create_bundle(tmp_path / "b", ["true"])
    passwd = bundle / "rootfs" / "etc" / "passwd"
    passwd.unlink()
    passwd.symlink_to(victim)
    (bundle / "rootfs" / "bin" / "busybox").unlink()
    (bundle / "rootfs" / "bin" / "busybox").symlink_to(victim)

    def create(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ACTORCTL, "bundle", "create", *extra, str(bundle), "--", "true"],
                              capture_output=True, text=True, timeout=60)

    refused = create()
    assert refused.returncode != 0 and "already exists" in refused.stderr and "--force" in refused.stderr
    forced = create("--force")
    assert forced.returncode == 0, forced.stderr
    assert victim.read_text() == "root:secret\n"
    assert not passwd.is_symlink() and passwd.read_text().startswith("root:x:0:0")
    rootfs = bundle / "rootfs"
    os.rename(rootfs, tmp_path / "old-rootfs")
    rootfs.symlink_to(victim_dir)
    (bundle / "config.json").unlink()
    (bundle / "config.json").symlink_to(victim)
    assert create("--force").returncode == 0
    assert victim.read_text() == "root:secret\n" and (victim_dir / "file").read_text() == "host data"
    assert sorted(os.listdir(victim_dir)) == ["file"]
    assert not (bundle / "config.json").is_symlink() and not rootfs.is_symlink()
    assert sorted(p for p in os.listdir(bundle) if p.startswith(".")) == []


def test_stale_shim_sockets_and_criu_work_dirs_are_removed_at_start(daemon: Daemon, sleeper: Path) -> None:
    live = daemon.start_container("live", sleeper)
    daemon.stop()
    stale_socket = daemon.state_dir / "shims" / ("0" * 32 + ".sock")
    stale_socket.write_bytes(b"")
    stale_work = daemon.state_dir / "criu" / "interrupted"
    stale_work.mkdir(parents=True)
    (stale_work / "dump.log").write_text("left by a killed checkpoint")
    daemon.start()
    assert not stale_socket.exists() and not (daemon.state_dir / "criu").exists()
    [container] = daemon.call("containers.list")
    assert container == live
    assert len(list((daemon.state_dir / "shims").iterdir())) == 1, "the live shim keeps its socket"
