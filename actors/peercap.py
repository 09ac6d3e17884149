"""A cap on the network peers of the control socket that have not proven who they are.

`actord start --listen tcp://...` (CURVE) lets anyone reach the port. libzmq accepts every
connection and gives it HANDSHAKE_IVL to complete the CURVE handshake, and it has no option
for a most-peers count: without a cap, raw connects that never send a byte would each hold
an fd until actord had none left, and libzmq aborts the process when an ipc accept (a local
client, a shim's exit report) then meets EMFILE (libzmq 4.3.5, the one pyzmq bundles:
ipc_listener.cpp asserts on it; the TCP listener's own accept survives EMFILE, but spins).

So the bus monitors the ROUTER: EVENT_ACCEPTED carries each accepted connection's fd,
EVENT_DISCONNECTED the fd of one libzmq is about to close (emitted before its close(), so a
number is never reused between the two in this event stream). A connection counts as
unproven from its accept until it closes or HANDSHAKE_SECONDS have passed: libzmq closes
one whose handshake is not done by then, so one still open afterwards has passed it (the
count errs on the high side: a connection counts from when the bus reads its accept, for
MARGIN_SECONDS more than the handshake may take). Beyond MAX_UNPROVEN, a new connection is
shut down at once: `shutdown()` on a dup of its fd, so libzmq itself sees the end of the
stream, closes its fd and forgets the peer; our dup is closed right after. An authorized
client refused that way (only while the cap is full) reconnects by itself, as ZeroMQ does.
libzmq accepts on its own IO thread, so a fast flood is briefly ahead of the bus: those fds
are covered by actors.fdbudget.ACCEPT_LAG (a measured bound, not a hard one).

Why shutting down a number from an event is safe: the event is read a little after the
accept, and the connection may have closed and its number been reused meanwhile. Before the
shutdown the dup is checked to be a TCP connection (not a listener) on the control socket's
own address and port; any other socket (an ipc connection, a pidfd, a metrics connection)
is left alone. And a connection that is past its handshake is left alone too, however late
the bus reads its accept: the kernel says how many bytes libzmq wrote to it (acknowledged by
the peer, plus still queued), and a CURVE server writes more than its greeting and WELCOME
(UNPROVEN_BYTES) only once the client has proven an authorized key (READY) or is refused
(ERROR, then libzmq closes it). So a client that got through is never cut off with its
request in flight; what is shut down had not proven itself, and retries on its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import termios
import time

import zmq
from zmq.utils.monitor import parse_monitor_message

from actors.refusals import RefusalReport

__all__ = ["HANDSHAKE_SECONDS", "MAX_UNPROVEN", "PeerGuard", "UnprovenPeers", "shut_down_connection"]

logger = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 5.0
"""ZMQ_HANDSHAKE_IVL of a network control socket (libzmq's default is 30 s): ample for a CURVE
handshake and its ZAP check over a slow network."""
MAX_UNPROVEN = 64
"""Network connections still in their handshake at once; more are shut down at their accept."""
MARGIN_SECONDS = 1.0
"""A connection counts this much longer than its handshake may take: libzmq starts the timer
when the connection is plugged into its session, which can come after the bus read the accept."""
WILDCARDS = ("0.0.0.0", "::")
UNPROVEN_BYTES = 64 + 170
"""What a CURVE server writes to a client before it knows who the client is: the ZMTP greeting
and the WELCOME command."""
TCP_INFO_BYTES_ACKED = 120
"""Offset of tcpi_bytes_acked (a u64, Linux 4.1 and later) in struct tcp_info."""


class UnprovenPeers:
    """The connections that may still be in their handshake: accepted less than `window`
    seconds ago and not closed since, at most `cap` of them."""

    def __init__(self, cap: int, window: float) -> None:
        self.cap = cap
        self.window = window
        self._accepted_at: dict[int, float] = {}
        """fd -> when its accept was seen, oldest first."""

    def __len__(self) -> int:
        return len(self._accepted_at)

    def admit(self, fd: int, now: float) -> bool:
        """A connection accepted as `fd`: True if it fits under the cap (it is counted from
        `now`), False if it must be refused (it is not counted)."""
        self._expire(now)
        self._accepted_at.pop(fd, None)  # a number seen again: its previous connection is gone
        if len(self._accepted_at) >= self.cap:
            return False
        self._accepted_at[fd] = now
        return True

    def closed(self, fd: int) -> None:
        """The connection `fd` closes (an unknown or refused one is no matter)."""
        self._accepted_at.pop(fd, None)

    def _expire(self, now: float) -> None:
        """Forget the connections open longer than the handshake may take: they passed it."""
        for fd, accepted_at in list(self._accepted_at.items()):
            if now - accepted_at < self.window:
                break
            del self._accepted_at[fd]


def bytes_written(connection: socket.socket) -> int:
    """The bytes written to a TCP connection so far: acknowledged by the peer, or still queued."""
    info = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES_ACKED + 8)
    (acked,) = struct.unpack_from("=Q", info, TCP_INFO_BYTES_ACKED)
    (queued,) = struct.unpack("=i", fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, bytes(4)))
    return int(acked) + int(queued)


def shut_down_connection(fd: int, host: str, port: int) -> bool:
    """Shut down the TCP connection that `fd` is, if it is one accepted on `host`:`port` (a
    wildcard host: any local address) not yet past its CURVE handshake; True if it was."""
    try:
        duplicate = os.dup(fd)
    except OSError:  # closed meanwhile, or no fd to spare
        return False
    try:
        connection = socket.socket(fileno=duplicate)
    except OSError:  # not a socket: the number was reused
        os.close(duplicate)
        return False
    with connection:
        if connection.family not in (socket.AF_INET, socket.AF_INET6) or connection.type != socket.SOCK_STREAM:
            return False
        try:
            if connection.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return False
            local_host, local_port = connection.getsockname()[:2]
            if local_port != port or (host not in WILDCARDS and local_host != host):
                return False
            if bytes_written(connection) > UNPROVEN_BYTES:
                return False
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the peer is gone already
            return False
    return True


def bound_address(endpoint: str) -> tuple[str, int]:
    """tcp://HOST:PORT (IPv6 in brackets), as ZMQ_LAST_ENDPOINT gives it -> (host, port)."""
    host, _, port = endpoint.split("://", 1)[-1].rpartition(":")
    return host.strip("[]"), int(port)


class PeerGuard:
    """Caps the unproven peers of a network ROUTER (see the module's docstring). Made, driven
    and closed by the thread that owns the ROUTER, before its bind."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], router: zmq.Socket[bytes]) -> None:
        self.router = router
        router.setsockopt(zmq.HANDSHAKE_IVL, int(HANDSHAKE_SECONDS * 1000))
        address = f"inproc://actord.peers.{id(self)}"
        router.monitor(address, zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.events = context.socket(zmq.PAIR)
        self.events.setsockopt(zmq.RCVHWM, 0)  # no event may be dropped: the count depends on each
        self.events.setsockopt(zmq.LINGER, 0)
        self.events.connect(address)
        self.peers = UnprovenPeers(MAX_UNPROVEN, HANDSHAKE_SECONDS + MARGIN_SECONDS)
        self.report = RefusalReport(logger, f"network control socket: {MAX_UNPROVEN} connections in their "
                                            f"handshake (each has {HANDSHAKE_SECONDS:.0f} s), the most at once")
        self._address: tuple[str, int] | None = None

    def drain(self) -> None:
        """Take in the accepts and closes seen; shut down each connection over the cap. (Each
        accept is timed as it is read: a drain can last while a flood goes on.)"""
        if self._address is None:
            self._address = bound_address(self.router.getsockopt_string(zmq.LAST_ENDPOINT))
        while True:
            try:
                frames = self.events.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)
            fd: int = event["value"]
            now = time.monotonic()
            if event["event"] != zmq.EVENT_ACCEPTED:
                self.peers.closed(fd)
            elif not self.peers.admit(fd, now) and shut_down_connection(fd, *self._address):
                self.report.refused(now)

    def close(self) -> None:
        self.router.disable_monitor()
        self.events.close(linger=0)
