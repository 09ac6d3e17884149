"""The CRI's way to the daemon: actorctl's client library, over the control socket's in-process
endpoint (the bus binds it for `via=cri`), one Client per gRPC thread (a ZeroMQ socket belongs
to one thread).

A call may wait long (a pull: up to an hour). When the daemon stops, one message on an
in-process PUB socket reaches every client's interrupt socket (`Transport.interrupt`) and ends
whatever call is under way with Unreachable, so no gRPC thread is left waiting for a bus that
is gone; then every socket is closed, which the ZeroMQ context's end waits for.
"""

from __future__ import annotations

import threading

import zmq

from actorctl.client import Client
from actors.bus import internal_address

__all__ = ["INTERNAL_NAME", "DaemonLink"]

INTERNAL_NAME = "cri"
"""The name the bus binds the control socket in-process under, and logs the CRI's requests as."""
STOP_ADDRESS = "inproc://actord.cri-stop"
DEFAULT_TIMEOUT = 10.0
"""Seconds a call waits for the daemon when the gRPC caller set no deadline (pulls: longer)."""


class DaemonLink:
    """Hands each gRPC thread its own Client; `interrupt_all` then `close` at the daemon's stop."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        self.context = context
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[Client] = []
        self._closed = False
        self._stop = context.socket(zmq.PUB)
        self._stop.setsockopt(zmq.LINGER, 0)
        self._stop.bind(STOP_ADDRESS)

    def client(self) -> Client:
        """This thread's client (made on its first call)."""
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the CRI's link to the daemon is closed")
                client = Client(internal_address(INTERNAL_NAME), DEFAULT_TIMEOUT, self.context)
                interrupt = self.context.socket(zmq.SUB)
                interrupt.setsockopt(zmq.LINGER, 0)
                interrupt.setsockopt(zmq.SUBSCRIBE, b"")
                interrupt.connect(STOP_ADDRESS)
                client.interrupt = interrupt
                self._clients.append(client)
            self._local.client = client
        return client

    def interrupt_all(self) -> None:
        """End every call under way, and every later one, with Unreachable."""
        self._stop.send(b"stop")

    def close(self) -> None:
        """Close every socket; call once no gRPC thread runs any more."""
        with self._lock:
            self._closed = True
            for client in self._clients:
                client.close()
                if client.interrupt is not None:
                    client.interrupt.close()
            self._clients.clear()
            self._stop.close()
