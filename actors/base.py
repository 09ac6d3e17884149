"""What every actor shares: its own bus socket and a guarded message dispatch."""

from __future__ import annotations

import logging
from typing import Any

import pykka
import zmq

from actors.bus import BusSender
from actors.wire.messages import make

__all__ = ["BusActor"]

logger = logging.getLogger(__name__)


class BusActor(pykka.ThreadingActor):
    """A pykka actor that receives validated message maps and sends through the bus.

    A message of type `t` is handled by the method `on_t`. An exception in a
    handler is logged and the actor keeps running: one bad message must not
    take a daemon actor down.
    """

    def __init__(self, context: zmq.Context) -> None:
        super().__init__()
        self._context = context
        self._bus: BusSender | None = None

    def on_start(self) -> None:
        self._bus = BusSender(self._context)

    def on_stop(self) -> None:
        if self._bus is not None:
            self._bus.close()

    def on_failure(self, *_: Any) -> None:
        self.on_stop()

    def send(self, destination: str, message_type: str, **members: Any) -> None:
        """Send a message of `message_type` to the actor (or "bus") named `destination`."""
        assert self._bus is not None, "send() before on_start()"
        self._bus.send(destination, make(message_type, **members))

    def on_receive(self, message: Any) -> None:
        handler = getattr(self, f"on_{message.get('type')}", None)
        if handler is None:
            logger.error("%s cannot handle %r", type(self).__name__, message.get("type"))
            return
        try:
            handler(message)
        except Exception:
            logger.exception("%s failed on %s", type(self).__name__, message.get("type"))
