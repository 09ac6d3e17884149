"""The `/metrics` HTTP endpoint (`actord start --metrics-address HOST:PORT`).

prometheus-client's WSGI app and threading server: one thread accepts, each scrape gets a
short-lived thread of its own, so a slow scraper holds up nobody, and every actor keeps
running while a scrape reads. The accepting thread waits on the socket and on a wake-up
pipe, never on a timer: `stop` returns as soon as it has closed the socket.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["MetricsServer", "parse_address"]


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
    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family  # read by the base class when it makes the socket
        super().__init__(address, _QuietHandler)


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
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not any(key.fileobj == self._wake_read for key, _ in selector.select()):
                self._server.handle_request()

    def stop(self) -> None:
        """Stop accepting and close the socket (a scrape under way finishes in its own thread)."""
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._server.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)
