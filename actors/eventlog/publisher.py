"""The event socket: an XPUB on ipc://<state>/events.sock, owned by the EventLog's thread.

The EventLog publishes on it directly (no hop through the bus thread between an event's
record and its departure). Every message is a topic frame and a msgpack body
(actors/wire/events.py); subscriptions are at most 1 KiB each.

Made and bound by whoever starts the daemon (a bind error stops the start); from the
EventLog's start on, only its thread touches it.
"""

from __future__ import annotations

import logging
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from actors.wire.codec import MAX_SUBSCRIPTION
from actors.wire.events import WELCOME_TOPIC, encode, welcome

__all__ = ["EventPublisher"]

logger = logging.getLogger(__name__)


class EventPublisher:
    """Publishes events, welcomes new subscriptions and counts the subscribers."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], address: str, *, boot: str,
                 hwm: int = 10000, buffer: int = 0) -> None:
        self.socket = context.socket(zmq.XPUB)
        self.socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription is seen, each one earns a welcome
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION)
        self.socket.setsockopt(zmq.SNDHWM, hwm)
        if buffer:
            self.socket.setsockopt(zmq.SNDBUF, buffer)
        self.socket.setsockopt(zmq.LINGER, 0)
        try:
            self.socket.bind(address)
        except zmq.ZMQError:
            self.socket.close()
            raise
        # its connects and disconnects: how many subscribers there are
        self.connections = self.socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.welcome = encode(WELCOME_TOPIC, welcome(boot))
        self.subscribers = 0
        """Connections to the event socket now (read by the metrics from other threads)."""

    def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Send one event; a subscriber at its high-water mark misses it (and replays)."""
        try:
            self.socket.send_multipart(encode(topic, event), zmq.NOBLOCK)
        except zmq.Again:
            logger.debug("event %s not published: subscribers are full", topic)

    def take_subscriptions(self) -> None:
        """Take in the subscriptions that arrived, then welcome them all at once: by now the
        XPUB applies them, so a subscriber that receives the welcome knows that every message
        matching them from then on is sent to it. (ZeroMQ's own welcome, XPUB_WELCOME_MSG, is
        one frame, and is sent when the pipe attaches, before any subscription is applied.)
        The welcome reaches every subscriber whose subscriptions match its topic, not just the
        new ones; they ignore it."""
        subscribed = False
        while True:
            try:
                frame = self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            subscribed = subscribed or frame[:1] == b"\x01"
        if subscribed:
            try:
                self.socket.send_multipart(self.welcome, zmq.NOBLOCK)
            except zmq.Again:
                logger.debug("welcome not sent: subscribers are full")

    def count_subscribers(self) -> None:
        """Follow the event socket's connects and disconnects: the metrics show the count."""
        while True:
            try:
                frames = self.connections.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            event = parse_monitor_message(frames)["event"]
            if event == zmq.EVENT_ACCEPTED:
                self.subscribers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.subscribers = max(0, self.subscribers - 1)

    def close(self) -> None:
        self.socket.disable_monitor()
        self.connections.close(linger=0)
        self.socket.close(linger=0)
