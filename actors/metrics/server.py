"""The `/metrics` HTTP endpoint (`actord start --metrics-address HOST:PORT`).

prometheus-client's WSGI app and threading server: one thread accepts, each scrape gets a
short-lived thread of its own, so a slow scraper holds up nobody, and every actor keeps
running while a scrape reads. The accepting thread waits on the socket and on a wake-up
pipe (and, while connections are open, until the next one is due): `stop` returns as soon
as it has closed the socket.

No client can exhaust the daemon through it: at most MAX_CONNECTIONS are open at once (so
as many threads and fds; the excess is closed as soon as it is accepted), and each is shut
down CONNECTION_SECONDS after its accept, whatever it is doing (an idle connection, a
request sent a byte at a time, a reply never read).
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from actors.refusals import RefusalReport

__all__ = ["CONNECTION_SECONDS", "MAX_CONNECTIONS", "MAX_FDS", "MetricsServer", "parse_address"]

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 16
"""Connections served at once (one thread each); Prometheus scrapes a target one at a time."""
CONNECTION_SECONDS = 5.0
"""A connection's whole life, from its accept: its request, the metrics and the reply."""
MAX_FDS = MAX_CONNECTIONS + 4
"""The most fds the server holds: its connections, one just accepted, the listening socket and
the wake-up pipe. actors.fdbudget keeps them free."""
STARVED_PAUSE = 0.1
"""After an accept failed for want of fds, wait this long before the next (not a busy loop)."""
REFUSAL = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def parse_address(address: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets: [::1]:9338) -> (host, port); ValueError saying what is wrong."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:9338)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"{address!r}: the port must be 1 to 65535")
    return host, number


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds is not worth a log line each."""


class _Server(ThreadingWSGIServer):
    """The threading server with a cap on open connections and a deadline for each."""

    request_queue_size = 64
    """The listen backlog (socketserver's 5 would have the kernel drop connects in a burst)."""

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family  # read by the base class when it makes the socket
        super().__init__(address, _QuietHandler)
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        """Open connections -> when they are shut down (inf: already shut down). The lock
        covers a connection's close too, so a shutdown never reaches an fd number reused."""
        self._report = RefusalReport(logger, f"metrics: {MAX_CONNECTIONS} connections open, the most at once "
                                             f"(each is closed {CONNECTION_SECONDS:.0f} s after its accept)")
        self.starved = False
        """The last accept failed for want of fds."""

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            request: tuple[socket.socket, Any] = super().get_request()
        except OSError as exc:
            self.starved = exc.errno in (errno.EMFILE, errno.ENFILE)
            raise
        self.starved = False
        return request

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Take a slot for the connection, or refuse it (a 503 if it fits in the socket buffer)."""
        with self._lock:
            admitted = len(self._deadlines) < MAX_CONNECTIONS
            if admitted:
                self._deadlines[request] = time.monotonic() + CONNECTION_SECONDS
        if not admitted:
            self._report.refused(time.monotonic())
            try:
                request.send(REFUSAL, socket.MSG_DONTWAIT)
            except OSError:
                pass
        return admitted

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._deadlines.pop(request, None)
            super().shutdown_request(request)

    def expire(self, now: float) -> float | None:
        """Shut down the connections past their deadline (their threads then end); the seconds
        until the next deadline, None when no connection is open."""
        with self._lock:
            for connection, deadline in self._deadlines.items():
                if deadline <= now:
                    try:
                        connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass  # the client had gone
                    self._deadlines[connection] = float("inf")
            due = [deadline - now for deadline in self._deadlines.values() if deadline != float("inf")]
        return min(due) if due else None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or ran out of time is no error of the daemon's."""
        logger.debug("metrics: connection from %s ended early", client_address, exc_info=True)


class MetricsServer:
    """Serves `registry` at http://HOST:PORT/metrics until `stop`; OSError if it cannot listen."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, port = parse_address(address)
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        self._server = _Server((host, port), family)
        self._server.set_app(make_wsgi_app(registry))
        self._server.timeout = 0  # handle_request never waits: a connection gone before its accept is skipped
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="metrics-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.PollSelector() as selector, selectors.PollSelector() as wake_only:  # poll: no fd of their own
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            wake_only.register(self._wake_read, selectors.EVENT_READ)
            while True:
                timeout = self._server.expire(time.monotonic())
                if self._server.starved and wake_only.select(STARVED_PAUSE):
                    return
                ready = selector.select(timeout)
                if any(key.fileobj == self._wake_read for key, _ in ready):
                    return
                if ready:
                    self._server.handle_request()

    def stop(self) -> None:
        """Stop accepting and close the socket (a scrape under way finishes in its own thread)."""
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._server.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)
