"""What every actor shares: its own bus socket and a guarded message dispatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pykka
import zmq

from actors.bus import BusSender, direct_address
from actors.daemonlog import log_context
from actors.pollinbox import PollingInbox, Readable, Source
from actors.wire import WireError, trace, unpack
from actors.wire import messages as wire
from actors.wire.messages import Message

__all__ = ["BusActor", "Handlers", "SocketActor"]

logger = logging.getLogger(__name__)

Handlers = Mapping[type[Any], Callable[[Any], None]]
"""Message class -> the handler of that message (each takes that class)."""


class BusActor(pykka.ThreadingActor):
    """A pykka actor that receives typed, validated messages and sends through the bus.

    `handlers()` is the actor's one dispatch table. An exception in a handler is logged and
    the actor keeps running: one bad message must not take a daemon actor down. What a handler
    logs carries the container, process and request of its message, where it has them.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        super().__init__()
        self._context = context
        self._bus: BusSender | None = None
        self._handlers = self.handlers()

    def handlers(self) -> Handlers:
        """What this actor handles."""
        return {}

    def on_start(self) -> None:
        self._bus = BusSender(self._context)

    def on_stop(self) -> None:
        if self._bus is not None:
            self._bus.close()

    def on_failure(self, *_: Any) -> None:
        self.on_stop()

    def send(self, destination: str, message: Message) -> None:
        """Send `message` to the actor (or "bus") named `destination`."""
        assert self._bus is not None, "send() before on_start()"
        self._bus.send(destination, message)

    def on_receive(self, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            logger.error("%s cannot handle %r", type(self).__name__, getattr(message, "kind", message))
            return
        with log_context(container_id=getattr(message, "container_id", None),
                         process=getattr(message, "process", None), request_id=getattr(message, "request_id", None)):
            try:
                handler(message)
            except Exception:
                logger.exception("%s failed on %s", type(self).__name__, message.kind)


class SocketActor(BusActor):
    """A BusActor that also owns sockets or fds: its inbox polls them beside its mailbox
    (actors/pollinbox.py), and what arrives on them is handled in its thread, not the bus's.
    Create the sockets in `__init__` (a bind error then reaches whoever starts the actor) and
    `watch` them in `on_start`: from then on only the actor's thread touches them.

    With an `inbox_name` (one of actors.bus.DIRECT_INBOXES) the actor binds its own inproc
    PULL socket, on which other actors' messages to it arrive without the bus thread; it is
    watched first, so in one round of the poll it is read before any other source.
    """

    inbox_name: ClassVar[str | None] = None
    actor_inbox: PollingInbox

    def __init__(self, context: zmq.Context[Any]) -> None:
        super().__init__(context)
        self._direct: zmq.Socket[bytes] | None = None
        if self.inbox_name is not None:
            self._direct = context.socket(zmq.PULL)
            self._direct.setsockopt(zmq.RCVHWM, 0)
            self._direct.setsockopt(zmq.LINGER, 0)
            self._direct.bind(direct_address(self.inbox_name))

    @staticmethod
    def _create_actor_inbox() -> PollingInbox:
        return PollingInbox()

    def on_start(self) -> None:
        super().on_start()
        if self._direct is not None:
            self.watch(self._direct, self._drain_direct)

    def on_stop(self) -> None:
        if self._direct is not None:
            self._direct.close(linger=0)
            self._direct = None
        super().on_stop()

    def watch(self, source: Source, handler: Callable[[], None]) -> None:
        """Call `handler` in this actor whenever `source` is readable; it drains the source."""
        self.actor_inbox.watch(source, handler)

    def unwatch(self, source: Source) -> None:
        self.actor_inbox.unwatch(source)

    def _drain_direct(self) -> None:
        """Handle every message waiting on the direct inbox, each checked as the bus checks."""
        assert self._direct is not None
        while True:
            try:
                data = self._direct.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = wire.decode(unpack(data, limit=1 << 30))
            except WireError as exc:
                logger.error("invalid internal message for %s dropped: %s", self.inbox_name, exc)
                continue
            token = getattr(message, "token", None)
            if trace.ENABLED and token:
                trace.stamp(token, f"{self.inbox_name}: {message.kind}")
            self.on_receive(message)

    def on_receive(self, message: Any) -> None:
        if type(message) is Readable:
            try:
                message.handler()
            except Exception:
                logger.exception("%s failed on a readable source", type(self).__name__)
            return
        super().on_receive(message)
