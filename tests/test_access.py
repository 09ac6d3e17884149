"""Who may use the daemon (a socket group; CURVE keys on the network), how much one client can
make it send or hold (bounded frames), and start-up refusals that say why in one line."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from actorctl.client import CallTimeout, Client, DaemonError, Unreachable
from actors.wire.events import HEARTBEAT_TOPIC
from tests.harness import (
    ACTORCTL,
    ACTORD,
    Certificates,
    Daemon,
    free_port,
    new_state_dir,
    remove_state_dir,
    wait_until,
)


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Users:
    group: str
    gid: int
    member: User
    outsider: User


@pytest.fixture(scope="module")
def users() -> Iterator[Users]:
    """A group and two users made for this module, one of them in the group; removed afterwards."""
    tag = f"{os.getpid() % 100000}"
    group, member, outsider = f"adg{tag}", f"adm{tag}", f"ado{tag}"
    made: list[list[str]] = []
    try:
        for create, remove in ((["groupadd", group], ["groupdel", group]),
                               (["useradd", "-M", "-N", "-G", group, member], ["userdel", member]),
                               (["useradd", "-M", "-N", outsider], ["userdel", outsider])):
            subprocess.run(create, check=True, capture_output=True)
            made.append(remove)
        as_user = [User(name, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid) for name in (member, outsider)]
        found = Users(group, grp.getgrnam(group).gr_gid, *as_user)
        probe = ctl_as(found.outsider, "ipc:///nowhere", "--version")
        assert probe.returncode == 0, (
            f"actorctl does not run as an unprivileged user (check the venv's permissions): {probe}")
        yield found
    finally:
        for remove in reversed(made):
            subprocess.run(remove, capture_output=True)


def ctl_as(user: User, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """actorctl run as `user` (with its groups), as that user would run it."""
    return subprocess.run(["setpriv", "--reuid", str(user.uid), "--regid", str(user.gid), "--init-groups",
                           ACTORCTL, "--address", address, *args],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., Daemon]]:
    """Start actord with the given options; afterwards its containers are gone and it is stopped."""
    started: list[Daemon] = []

    def start(*args: str, wait: bool = True) -> Daemon:
        daemon = Daemon(new_state_dir(), extra_args=list(args))
        started.append(daemon)
        return daemon.start(wait)

    yield start
    for daemon in started:
        try:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.kill_everything()
                assert daemon.stop() == 0, daemon.log()
        finally:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait()
            remove_state_dir(daemon.state_dir)


def state_tree(root: Path) -> Iterator[Path]:
    """Everything in the state dir but the containers' root filesystems: those are bind mounts of
    the bundles' own, with their modes, behind the 0700 dir of their container."""
    with open("/proc/self/mountinfo") as mountinfo:
        mounts = {line.split()[4] for line in mountinfo}
    for parent, dirs, files in os.walk(root):
        dirs[:] = [name for name in dirs if os.path.join(parent, name) not in mounts]
        yield from (Path(parent, name) for name in dirs + files)


def mode_and_owner(path: Path) -> tuple[str, int, int]:
    info = path.lstat()
    return oct(stat.S_IMODE(info.st_mode)), info.st_uid, info.st_gid


def test_the_socket_group_may_use_actord_and_no_one_else(users: Users, start_daemon: Callable[..., Daemon],
                                                         sleeper: Path) -> None:
    daemon = start_daemon("--socket-group", users.group)
    daemon.start_container("shared", sleeper)
    root = daemon.state_dir
    assert mode_and_owner(root) == ("0o710", 0, users.gid)
    shared = {root / "actord.sock", root / "events.sock", root / "cri.sock"}
    for sock in shared:
        assert mode_and_owner(sock) == ("0o660", 0, users.gid)
    assert [path for path in state_tree(root) if path not in shared and path.lstat().st_mode & 0o077] == [], \
        "only the control, event and CRI sockets may be open to the group"

    listed = ctl_as(users.member, daemon.address, "containers", "list")
    assert listed.returncode == 0 and "shared" in listed.stdout, listed
    refused = ctl_as(users.member, daemon.address, "containers", "kill", "ghost")
    assert refused.returncode == 1 and "ghost" in refused.stderr, refused
    assert f"containers.signal 'ghost' by uid={users.member.uid} gid={users.member.gid} pid=" in daemon.log()

    outsider = ctl_as(users.outsider, daemon.address, "containers", "list")
    assert outsider.returncode == 3, outsider
    assert "cannot reach actord" in outsider.stderr and "permission denied" in outsider.stderr


def test_without_a_socket_group_only_root_may_use_actord(users: Users,
                                                         start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon()
    assert mode_and_owner(daemon.state_dir) == ("0o700", 0, 0)
    assert mode_and_owner(daemon.state_dir / "actord.sock") == ("0o600", 0, 0)
    member = ctl_as(users.member, daemon.address, "containers", "list")
    assert member.returncode == 3 and "permission denied" in member.stderr, member


@pytest.mark.parametrize(("args", "message"), [
    (["--socket-group", "no-such-group-x"], "--socket-group: there is no group 'no-such-group-x'"),
    (["--pidfile", "/proc/no/such/dir/actord.pid"], "cannot write the pidfile /proc/no/such/dir/actord.pid"),
    (["--state-dir", "/proc/actord"], "cannot prepare the state dir /proc/actord"),  # the last --state-dir counts
])
def test_start_up_refusals_are_one_clear_line(args: list[str], message: str) -> None:
    state_dir = new_state_dir()
    try:
        done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), *args],
                              capture_output=True, text=True, timeout=30)
    finally:
        remove_state_dir(state_dir)
    assert done.returncode == 1
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("given", [[], ["--curve-secret-key"], ["--curve-authorized-keys"]])
def test_a_network_address_without_curve_keys_is_refused(certificates: Certificates, given: list[str]) -> None:
    values = {"--curve-secret-key": str(certificates.server[1]),
              "--curve-authorized-keys": str(certificates.authorized)}
    listen = f"tcp://127.0.0.1:{free_port()}"
    state_dir = new_state_dir()
    try:
        done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), "--listen", listen,
                               *(part for option in given for part in (option, values[option]))],
                              capture_output=True, text=True, timeout=30)
    finally:
        remove_state_dir(state_dir)
    assert done.returncode == 1
    assert f"refusing to listen on {listen} without CURVE" in done.stderr
    assert "an unauthenticated root API on the network is never one flag away" in done.stderr
    for option in values:
        assert (f"{option} {'FILE' if 'secret' in option else 'DIR'} (" in done.stderr) == (option not in given)


def test_over_the_network_curve_admits_the_authorized_keys_only(certificates: Certificates,
                                                                 start_daemon: Callable[..., Daemon]) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    daemon = start_daemon("--listen", address, "--curve-secret-key", str(certificates.server[1]),
                          "--curve-authorized-keys", str(certificates.authorized), wait=False)

    def call_as(key: Path | None, method: str, params: dict[str, str] | None = None) -> object:
        """Call with this client key (None: no CURVE at all)."""
        server_key = None if key is None else certificates.server[0]
        with Client(address, 1.0, curve_server_key=server_key, curve_client_key=key) as client:
            return client.call(method, params)

    def answers() -> bool:
        assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
        try:
            return call_as(certificates.client[1], "version") is not None
        except (Unreachable, CallTimeout):
            return False

    wait_until(answers, 15, 0.1, "actord to answer over CURVE")
    env = dict(os.environ, ACTORD_CURVE_SERVER_KEY=str(certificates.server[0]),
               ACTORD_CURVE_CLIENT_KEY=str(certificates.client[1]))
    done = subprocess.run([ACTORCTL, "--address", address, "version"], capture_output=True, text=True, env=env,
                          timeout=30)
    assert done.returncode == 0 and "protocol 1" in done.stdout, done

    with pytest.raises(DaemonError):
        call_as(certificates.client[1], "containers.signal", {"id": "ghost"})
    client_key = zmq.auth.load_certificate(certificates.client[0])[0].decode()
    assert f"containers.signal 'ghost' by address=127.0.0.1 key={client_key}" in daemon.log()

    for stranger in (certificates.intruder[1], None):
        with pytest.raises((Unreachable, CallTimeout)):
            call_as(stranger, "version")
    refused = subprocess.run([ACTORCTL, "--address", address, "--timeout", "1", "--curve-server-key",
                              str(certificates.server[0]), "--curve-client-key", str(certificates.intruder[1]),
                              "version"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 3 and "--curve-authorized-keys" in refused.stderr, refused


BIG_LABELS = {f"label-{n}": "x" * 4096 for n in range(200)}
"""About 820 KiB of labels: one container's fit in a frame, two containers' do not."""


def test_a_reply_over_the_frame_limit_becomes_a_too_large_error(daemon: Daemon, sleeper: Path) -> None:
    for container_id in ("big1", "big2"):
        assert daemon.start_container(container_id, sleeper, labels=BIG_LABELS)["labels"] == BIG_LABELS
    with pytest.raises(DaemonError) as refused:
        daemon.call("containers.list", timeout=5)
    assert refused.value.code == "too_large"
    assert "over the 1 MiB frame limit; ask for less" in refused.value.message
    done = daemon.ctl("containers", "list", timeout=10)
    assert done.returncode == 1 and "frame limit" in done.stderr, done
    assert daemon.call("containers.state", {"id": "big1"})["labels"] == BIG_LABELS
    assert "over the frame limit" in daemon.log()


def test_an_oversized_subscription_drops_that_subscriber_and_nothing_else(daemon: Daemon) -> None:
    context = zmq.Context[zmq.Socket[bytes]].instance()
    events = daemon.events_address
    hostile = context.socket(zmq.XSUB)
    hostile.setsockopt(zmq.LINGER, 0)
    hostile.setsockopt(zmq.RECONNECT_IVL, -1)
    monitor = hostile.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    listener = context.socket(zmq.SUB)
    listener.setsockopt(zmq.LINGER, 0)
    listener.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC.encode())
    try:
        hostile.connect(events)
        hostile.send(b"\x01" + b"x" * (64 << 10))  # a "subscription" of 64 KiB
        assert monitor.poll(5000), "the daemon kept a subscriber that sent a 64 KiB frame"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        listener.connect(events)
        assert listener.poll(5000), "no heartbeat for a well-behaved subscriber"
        assert daemon.call("version")["protocol"] == 1
    finally:
        hostile.disable_monitor()
        for sock in (monitor, hostile, listener):
            sock.close()
