"""Follow the event stream with no gap and no duplicate.

1. subscribe to everything and wait for the daemon's welcome (the pipe is attached);
2. replay what the log holds after the last sequence number seen;
3. read live events, dropping `seq <= last`; a jump in `seq`, or a heartbeat whose
   `seq` is ahead of `last`, means events were dropped on the way (a PUB socket
   drops for slow subscribers): replay from the log to fill the gap;
4. a heartbeat with a new `boot` means the daemon restarted: replay from `last`.
While the daemon is away (no heartbeat, calls fail) the stream waits for it to
come back, for at most `reconnect` seconds.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import zmq

from actorctl.client import CallTimeout, Client, Unreachable
from actors.wire import WireError, unpack

__all__ = ["follow", "stored"]

WELCOME = b"\x00welcome"
HEARTBEAT_TOPIC = b"daemon/heartbeat"
HEARTBEAT_MISSED = 3.0
"""Seconds without a heartbeat after which the daemon is presumed away."""


def _matches(event: dict[str, Any], container_id: str | None, since: float | None) -> bool:
    if container_id is not None and event.get("id") != container_id:
        return False
    return since is None or event.get("timestamp", 0) >= since


def stored(client: Client, after: int, since: float | None = None,
           container_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every stored event after `after`, page by page."""
    params: dict[str, Any] = {"after": after}
    if since is not None:
        params["since"] = since
    if container_id is not None:
        params["id"] = container_id
    while True:
        result = client.call("events.replay", params)
        yield from result["events"]
        params["after"] = result["through"]
        if not result["more"]:
            return


class _Stream:
    def __init__(self, client: Client, after: int, since: float | None, container_id: str | None,
                 reconnect: float) -> None:
        self.client = client
        self.last = after
        self.since = since
        self.container_id = container_id
        self.reconnect = reconnect
        self.boot: str | None = None

    def catch_up(self) -> Iterator[dict[str, Any]]:
        """Replay from the log after `last`, retrying while the daemon is away."""
        gave_up_at = time.monotonic() + self.reconnect
        while True:
            try:
                for event in stored(self.client, self.last):
                    self.last = event["seq"]
                    self.boot = event.get("boot", self.boot)
                    if _matches(event, self.container_id, self.since):
                        yield event
                return
            except (Unreachable, CallTimeout):
                if time.monotonic() > gave_up_at:
                    raise
                time.sleep(0.2)

    def live(self, frames: list[bytes]) -> Iterator[dict[str, Any]]:
        if len(frames) != 2:
            return
        try:
            event = unpack(frames[1])
        except WireError:
            return
        seq = event.get("seq")
        if not isinstance(seq, int):
            return
        if frames[0] == HEARTBEAT_TOPIC:
            restarted = self.boot is not None and event.get("boot") != self.boot
            self.boot = event.get("boot")
            if restarted or seq > self.last:
                yield from self.catch_up()
            return
        if seq <= self.last:
            return
        if seq > self.last + 1 or event.get("boot") != self.boot:
            yield from self.catch_up()
            if seq <= self.last:
                return
        self.last = seq
        self.boot = event.get("boot")
        if _matches(event, self.container_id, self.since):
            yield event


def follow(client: Client, events_address: str, after: int = 0, since: float | None = None,
           container_id: str | None = None, reconnect: float = 30.0) -> Iterator[dict[str, Any]]:
    """Stored events after `after`, then live ones, forever (or until the daemon stays away)."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(events_address)
    stream = _Stream(client, after, since, container_id, reconnect)
    try:
        deadline = time.monotonic() + client.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sub.poll(int(remaining * 1000)):
                raise Unreachable(f"no event stream at {events_address}")
            if sub.recv_multipart() == [WELCOME]:
                break
        yield from stream.catch_up()
        heard = time.monotonic()
        while True:
            if sub.poll(1000):
                heard = time.monotonic()
                yield from stream.live(sub.recv_multipart())
            elif time.monotonic() - heard > HEARTBEAT_MISSED:
                yield from stream.catch_up()  # waits for the daemon, up to `reconnect`
                heard = time.monotonic()
    finally:
        sub.close()
