"""What every actor shares: its own bus socket and a guarded message dispatch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pykka
import zmq

from actors.bus import BusSender
from actors.daemonlog import log_context
from actors.pollinbox import PollingInbox, Readable, Source
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
    `watch` them in `on_start`: from then on only the actor's thread touches them."""

    actor_inbox: PollingInbox

    @staticmethod
    def _create_actor_inbox() -> PollingInbox:
        return PollingInbox()

    def watch(self, source: Source, handler: Callable[[], None]) -> None:
        """Call `handler` in this actor whenever `source` is readable; it drains the source."""
        self.actor_inbox.watch(source, handler)

    def unwatch(self, source: Source) -> None:
        self.actor_inbox.unwatch(source)

    def on_receive(self, message: Any) -> None:
        if type(message) is Readable:
            try:
                message.handler()
            except Exception:
                logger.exception("%s failed on a readable source", type(self).__name__)
            return
        super().on_receive(message)
