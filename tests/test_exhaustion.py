"""No client can exhaust actord: a thousand idle connections to the metrics server, or a
thousand raw TCP connects to a CURVE control socket that never start their handshake, under
a low open-files limit, leave it serving (without the caps, libzmq aborted it with "Too many
open files" at the next ipc accept), and it gives their fds and threads back."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from actorctl.client import Client
from actors.fdbudget import ACCEPT_LAG, fd_reserve
from actors.metrics.server import CONNECTION_SECONDS, MAX_CONNECTIONS, MAX_FDS
from actors.peercap import HANDSHAKE_SECONDS, MAX_UNPROVEN
from actors.wire.events import HEARTBEAT_TOPIC
from tests.harness import (
    ACTORCTL,
    Certificates,
    Daemon,
    checked_daemon,
    free_port,
    new_state_dir,
    remove_state_dir,
    wait_until,
)

FLOOD = 1000
BATCH = 4
"""Connects made at once: fewer than any listen backlog holds (even socketserver's 5), so the
kernel hands every one to actord instead of dropping some (syncookies)."""
HEADROOM = 120
"""actord's soft open-files limit in these tests is its reserve and this: room for its own fds
and a container, not for the flood. (The hard limit stays: runc raises a container's to 1024.)"""
NO_CRI = ("--cri-address", "none")
"""The listener under test alone: its reserve is what the limit is set from."""
SETTLE_SECONDS = 20.0
"""How long a batch may wait for actord to take it (milliseconds, when it does)."""


@dataclass(frozen=True)
class Usage:
    fds: int
    threads: int


def limit_open_files(daemon: Daemon, reserve: int) -> int:
    """Lower actord's soft open-files limit to `reserve` + HEADROOM, below what the flood would
    take without the caps; its pid."""
    assert daemon.process is not None
    pid = daemon.process.pid
    soft, hard = reserve + HEADROOM, resource.prlimit(pid, resource.RLIMIT_NOFILE)[1]
    assert soft < FLOOD, "the flood would not reach the limit"
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    return pid


def usage(pid: int) -> Usage:
    return Usage(len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")))


def died(daemon: Daemon) -> bool:
    return daemon.process is None or daemon.process.poll() is not None


def alive(daemon: Daemon) -> None:
    assert not died(daemon), f"actord died:\n{daemon.log()[-3000:]}"


def accept_queue(port: int) -> int:
    """Connections the kernel holds for actord's listening socket on `port`, not yet accepted."""
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def poll_events(held: list[socket.socket]) -> list[int]:
    poller = select.poll()
    for connection in held:
        poller.register(connection, select.POLLOUT | select.POLLRDHUP)
    events = dict(poller.poll(0))
    return [events.get(connection.fileno(), 0) for connection in held]


def connected(held: list[socket.socket]) -> bool:
    return all(event & select.POLLOUT for event in poll_events(held))


def closed_by_actord(held: list[socket.socket]) -> int:
    return sum(1 for event in poll_events(held) if event & (select.POLLRDHUP | select.POLLHUP))


def came_true(condition: Callable[[], bool], timeout: float) -> bool:
    """wait_until that answers instead of failing: the test checks the daemon first."""
    try:
        wait_until(condition, timeout, 0.005)
    except AssertionError:
        return False
    return True


@contextmanager
def flood(daemon: Daemon, port: int) -> Iterator[list[socket.socket]]:
    """FLOOD connections to 127.0.0.1:`port` that never send a byte, BATCH at a time, each batch
    once actord has taken the last from the kernel (stops early if it does not, or dies); held
    until the end."""
    held: list[socket.socket] = []
    try:
        while len(held) < FLOOD:
            for _ in range(BATCH):
                connection = socket.socket()
                held.append(connection)
                connection.setblocking(False)
                connection.connect_ex(("127.0.0.1", port))
            if not came_true(lambda: died(daemon) or (connected(held) and accept_queue(port) == 0),
                             SETTLE_SECONDS) or died(daemon):
                break
        yield held
    finally:
        for connection in held:
            connection.close()


def heartbeat_heard(daemon: Daemon) -> bool:
    """Does a new local event subscriber get a heartbeat? (Its connect is an ipc accept in actord:
    libzmq aborts the process if that meets EMFILE.)"""
    subscriber: zmq.Socket[bytes]
    with zmq.Context.instance().socket(zmq.SUB) as subscriber:
        subscriber.setsockopt(zmq.LINGER, 0)
        subscriber.setsockopt(zmq.SUBSCRIBE, HEARTBEAT_TOPIC.encode())
        subscriber.connect(daemon.events_address)
        return bool(subscriber.poll(20_000))


def scrape(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return b"actord_containers" in response.read()
    except OSError:
        return False


@pytest.mark.slow
def test_idle_connections_to_the_metrics_server_cannot_exhaust_actord(request: pytest.FixtureRequest,
                                                                      sleeper: Path) -> None:
    port = free_port()
    state_dir = new_state_dir()
    try:
        instance = Daemon(state_dir, extra_args=["--metrics-address", f"127.0.0.1:{port}", *NO_CRI])
        with checked_daemon(instance, request) as daemon:
            pid = limit_open_files(daemon, fd_reserve(metrics=True))
            wait_until(lambda: scrape(port), message="a first scrape")
            before = usage(pid)
            with flood(daemon, port) as held:
                during = usage(pid)
                done = daemon.ctl("version", timeout=30)
                alive(daemon)
                assert done.returncode == 0, done
                assert len(held) == FLOOD and connected(held), "actord did not take every connection"
                assert during.fds <= before.fds + MAX_FDS and during.threads <= before.threads + MAX_CONNECTIONS, \
                    (before, during)
                wait_until(lambda: closed_by_actord(held) >= FLOOD - MAX_CONNECTIONS, 30, 0.05,
                           "the excess connections closed")
                daemon.start_container("web", sleeper)
                wait_until(lambda: scrape(port), 15, 0.2, "a scrape while the idle connections are held")
                wait_until(lambda: closed_by_actord(held) == FLOOD, CONNECTION_SECONDS + 10, 0.05,
                           "the idle connections closed at their deadline")
            back_to(daemon, pid, before)
    finally:
        remove_state_dir(state_dir)



def back_to(daemon: Daemon, pid: int, before: Usage) -> None:
    """Kill the test's container; then actord's fds and threads come back to `before`."""
    daemon.call("containers.signal", {"id": "web", "signal": 9})
    wait_until(lambda: not daemon.call("containers.list"), message="the container gone")
    wait_until(lambda: usage(pid).fds <= before.fds + 2 and usage(pid).threads <= before.threads + 1,
               15, 0.1, f"actord's fds and threads back to {before}")


@dataclass
class NetworkDaemon(Daemon):
    """actord on a CURVE control socket `listen` (tcp), called with the authorized client's key."""

    listen: str = ""
    certificates: Certificates | None = None

    @property
    def address(self) -> str:
        return self.listen

    def client(self, timeout: float = 10.0) -> Client:
        assert self.certificates is not None
        return Client(self.listen, timeout, curve_server_key=self.certificates.server[0],
                      curve_client_key=self.certificates.client[1])

    def version(self) -> subprocess.CompletedProcess[str]:
        """`actorctl version` over the network."""
        assert self.certificates is not None
        env = dict(os.environ, ACTORD_ADDRESS=self.listen, ACTORD_CURVE_SERVER_KEY=str(self.certificates.server[0]),
                   ACTORD_CURVE_CLIENT_KEY=str(self.certificates.client[1]))
        return subprocess.run([ACTORCTL, "version"], capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.slow
def test_raw_connects_to_the_network_control_socket_cannot_exhaust_actord(request: pytest.FixtureRequest,
                                                                          certificates: Certificates,
                                                                          sleeper: Path) -> None:
    port = free_port()
    listen = f"tcp://127.0.0.1:{port}"
    state_dir = new_state_dir()
    try:
        instance = NetworkDaemon(state_dir, listen=listen, certificates=certificates, extra_args=[
            *NO_CRI, "--listen", listen, "--curve-secret-key", str(certificates.server[1]),
            "--curve-authorized-keys", str(certificates.authorized)])
        with checked_daemon(instance, request) as daemon:
            pid = limit_open_files(daemon, fd_reserve(network=True))
            before = usage(pid)
            with flood(daemon, port) as held:
                during = usage(pid)
                heard = heartbeat_heard(daemon)
                alive(daemon)
                assert heard, "a local event subscriber got no heartbeat"
                done = instance.version()
                assert done.returncode == 0, done
                assert len(held) == FLOOD and connected(held), "actord did not take every connection"
                assert during.fds <= before.fds + MAX_UNPROVEN + ACCEPT_LAG and during.threads == before.threads, \
                    (before, during)
                wait_until(lambda: closed_by_actord(held) >= FLOOD - MAX_UNPROVEN, 30, 0.05,
                           "the connections over the cap closed")
                wait_until(lambda: closed_by_actord(held) == FLOOD, HANDSHAKE_SECONDS + 10, 0.05,
                           "the connections without a handshake closed at its deadline")
                daemon.start_container("web", sleeper)  # the reserve for the listener is free again
            back_to(daemon, pid, before)
    finally:
        remove_state_dir(state_dir)
