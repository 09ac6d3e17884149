"""A pykka inbox that also waits on the actor's own sockets and fds.

Why: an actor that owns a socket takes what arrives on it in its own thread, with no hop
through the bus thread. The Monitor owns the shims' PULL socket and the epoll of their
pidfds and OOM fds; the EventLog owns the XPUB it publishes on. Each hop saved is one
thread wake-up less on the exit -> event path.

Messages from other actors still come through the bus and pykka's `tell`: `put` appends to
a deque and signals an eventfd, which `get` polls beside the watched sources. A source
found readable is handed to the actor as a `Readable` message that names its handler, which
drains it; sources go before the mailbox.
"""

from __future__ import annotations

import collections
import os
import weakref
from collections.abc import Callable
from typing import Any

import zmq
from pykka._envelope import Envelope

__all__ = ["PollingInbox", "Readable", "Source"]

Source = zmq.Socket[Any] | int
"""What an inbox can watch: a ZeroMQ socket of the actor's, or a raw fd (an epoll's, say)."""


class Readable:
    """A watched source has something to read: the actor runs `handler`, which drains it."""

    __slots__ = ("handler",)
    kind = "readable"

    def __init__(self, handler: Callable[[], None]) -> None:
        self.handler = handler


class PollingInbox:
    """pykka's ActorInbox protocol (put, get, empty) over a deque, an eventfd and a zmq poller.

    `put` may be called from any thread; `get`, `watch` and `unwatch` only from the actor's.
    The eventfd is closed when the inbox is collected, never before: a late `tell` from
    another thread must not write to an fd number since reused.
    """

    def __init__(self) -> None:
        self._queue: collections.deque[Envelope[Any]] = collections.deque()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        weakref.finalize(self, os.close, self._wake)
        self._poller = zmq.Poller()
        self._poller.register(self._wake, zmq.POLLIN)
        self._handlers: dict[Any, Callable[[], None]] = {}
        self._ready: collections.deque[Callable[[], None]] = collections.deque()

    def watch(self, source: Source, handler: Callable[[], None]) -> None:
        """Run `handler` in the actor whenever `source` is readable (it must drain it)."""
        self._poller.register(source, zmq.POLLIN)
        self._handlers[source] = handler

    def unwatch(self, source: Source) -> None:
        if self._handlers.pop(source, None) is not None:
            self._poller.unregister(source)

    def put(self, envelope: Envelope[Any], /) -> None:
        self._queue.append(envelope)
        os.eventfd_write(self._wake, 1)

    def get(self) -> Envelope[Any]:
        """The next thing to handle: a readable source first, then the mailbox. Sources come
        first so that a message sent on a socket before the bus passed on a message that it
        caused (a client's request after the reply) is handled first."""
        while True:
            if self._ready:
                return Envelope(Readable(self._ready.popleft()))
            # a mailbox with messages only peeks at the sources; an empty one sleeps on them
            for source, _ in self._poller.poll(0 if self._queue else None):
                if source == self._wake:
                    try:
                        os.eventfd_read(self._wake)
                    except BlockingIOError:
                        pass
                elif source in self._handlers:
                    self._ready.append(self._handlers[source])
            if not self._ready and self._queue:
                return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue
