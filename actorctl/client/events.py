"""Follow the event stream with no gap and no duplicate.

1. subscribe to everything and wait for the daemon's welcome (the subscription is in effect);
2. replay what the log holds after the last sequence number seen;
3. read live events, dropping `seq <= last`; a jump in `seq`, or a heartbeat whose
   `seq` is ahead of `last`, means events were dropped on the way (a PUB socket
   drops for slow subscribers): replay from the log to fill the gap;
4. a heartbeat with a new `boot` means the daemon restarted: replay from `last`.
While the daemon is away (no heartbeat, calls fail) the stream waits for it to
come back, for at most `reconnect` seconds.

This is the machinery of `Client.events` and `Client.wait` (the public, typed ways in); `attach`
is also for programs that need their own subscription (tests, benchmarks).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from actorctl.client.errors import InternalError, Timeout, Unreachable
from actorctl.client.transport import Transport
from actors.wire import WireError
from actors.wire.events import HEARTBEAT_INTERVAL, WELCOME_TOPIC, EventRecord, as_record, decode

__all__ = ["attach", "follow", "stored"]

HEARTBEAT_MISSED = 3 * HEARTBEAT_INTERVAL
"""Seconds without a heartbeat after which the daemon is presumed away."""


def _matches(event: EventRecord, container_id: str | None, since: float | None,
             types: frozenset[str] | None = None) -> bool:
    if container_id is not None and event["id"] != container_id:
        return False
    if types is not None and event["type"] not in types:
        return False
    return since is None or event["timestamp"] >= since


def stored(client: Transport, after: int, since: float | None = None, container_id: str | None = None,
           types: frozenset[str] | None = None) -> Iterator[EventRecord]:
    """Every stored event after `after` (of those `types`, if given), page by page; the daemon filters."""
    params: dict[str, Any] = {"after": after}
    if types is not None:
        params["type"] = sorted(types)
    if since is not None:
        params["since"] = since
    if container_id is not None:
        params["id"] = container_id
    while True:
        result = client.call("events.replay", params)
        for event in result["events"]:
            try:
                yield as_record(event)
            except WireError as exc:
                raise InternalError("internal", f"events.replay returned a malformed event: {exc}") from None
        params["after"] = result["through"]
        if not result["more"]:
            return


def attach(events_address: str, topics: Iterable[str] = ("",), timeout: float = 10.0, *,
           context: zmq.Context[zmq.Socket[bytes]] | None = None, rcvhwm: int | None = None) -> zmq.Socket[bytes]:
    """A SUB socket on the event stream subscribed to the topic prefixes `topics` (default: all),
    returned once the daemon's welcome arrived: every message matching them that is published
    from then on reaches it. Unreachable if no welcome comes within `timeout` seconds."""
    sub = (context or zmq.Context.instance()).socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if rcvhwm is not None:
        sub.setsockopt(zmq.RCVHWM, rcvhwm)
    prefixes = list(topics)
    if not any(WELCOME_TOPIC.startswith(prefix) for prefix in prefixes):
        prefixes.append(WELCOME_TOPIC)  # last: its welcome then proves the others in effect too
    for prefix in prefixes:
        sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
    sub.connect(events_address)
    try:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sub.poll(int(remaining * 1000) + 1):
                raise Unreachable(f"no event stream at {events_address}")
            try:
                if decode(sub.recv_multipart())["type"] == "welcome":
                    return sub
            except WireError:
                continue
    except BaseException:
        sub.close()
        raise


class _Stream:
    def __init__(self, client: Transport, after: int, since: float | None, container_id: str | None,
                 reconnect: float, types: frozenset[str] | None) -> None:
        self.client = client
        self.last = after
        self.since = since
        self.container_id = container_id
        self.types = types
        self.reconnect = reconnect
        self.boot: str | None = None

    def catch_up(self) -> Iterator[EventRecord]:
        """Replay from the log after `last`, retrying while the daemon is away."""
        gave_up_at = time.monotonic() + self.reconnect
        while True:
            try:
                for event in stored(self.client, self.last):
                    self.last = event["seq"]
                    self.boot = event["boot"]
                    if _matches(event, self.container_id, self.since, self.types):
                        yield event
                return
            except (Unreachable, Timeout):
                if time.monotonic() > gave_up_at:
                    raise
                time.sleep(0.2)

    def live(self, frames: list[bytes]) -> Iterator[EventRecord]:
        try:
            message = decode(frames)
        except WireError:
            return
        if message["type"] == "welcome":
            return  # another subscriber's
        if message["type"] == "heartbeat":
            restarted = self.boot is not None and message["boot"] != self.boot
            self.boot = message["boot"]
            if restarted or message["seq"] > self.last:
                yield from self.catch_up()
            return
        seq = message["seq"]
        if seq <= self.last:
            return
        if seq > self.last + 1 or message["boot"] != self.boot:
            yield from self.catch_up()
            if seq <= self.last:
                return
        self.last = seq
        self.boot = message["boot"]
        if _matches(message, self.container_id, self.since, self.types):
            yield message


def follow(client: Transport, events_address: str, after: int = 0, since: float | None = None,
           container_id: str | None = None, reconnect: float = 30.0, *, types: frozenset[str] | None = None,
           deadline: float | None = None, sub: zmq.Socket[bytes] | None = None) -> Iterator[EventRecord]:
    """Stored events after `after`, then live ones, forever (or until the daemon stays away, or
    the `time.monotonic()` `deadline` passes: then the iterator ends). `container_id`, `since`
    (unix time) and `types` select which are yielded; every event is still read, to see gaps.
    `sub`: a socket from `attach` to use (and close), made earlier by a caller that needed to be
    subscribed before it could read the stream."""
    if sub is None:
        sub = attach(events_address, timeout=client.timeout)
    stream = _Stream(client, after, since, container_id, reconnect, types)
    try:
        yield from stream.catch_up()
        heard = time.monotonic()
        while deadline is None or time.monotonic() < deadline:
            wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            if sub.poll(int(wait * 1000) + 1):
                heard = time.monotonic()
                yield from stream.live(sub.recv_multipart())
            elif time.monotonic() - heard > HEARTBEAT_MISSED:
                yield from stream.catch_up()  # waits for the daemon, up to `reconnect`
                heard = time.monotonic()
    finally:
        sub.close()
