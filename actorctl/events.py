"""Follow the event stream with no gap and no duplicate.

1. subscribe to everything and wait for the daemon's welcome (the pipe is attached);
2. replay what the log holds after the last sequence seen;
3. read live events, dropping `seq <= last`; a jump in `seq` or a heartbeat ahead
   of `last` means some were dropped on the way: replay from the log to fill it.
A new `boot` in the heartbeat means the daemon restarted: replay from `last` too.
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


def _matches(event: dict[str, Any], container_id: str | None, since: float | None) -> bool:
    if container_id is not None and event.get("id") != container_id:
        return False
    return since is None or event.get("timestamp", 0) >= since


def stored(client: Client, after: int, since: float | None = None,
           container_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every stored event after `after`, page by page. The last one's replay result is kept in `.last`."""
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


def follow(client: Client, events_address: str, after: int = 0, since: float | None = None,
           container_id: str | None = None, idle_timeout: float = 5.0) -> Iterator[dict[str, Any]]:
    """Stored events after `after`, then live ones, forever."""
    context = zmq.Context.instance()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(events_address)
    try:
        deadline = time.monotonic() + client.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sub.poll(int(remaining * 1000)):
                raise Unreachable(f"no event stream at {events_address}")
            frames = sub.recv_multipart()
            if frames == [WELCOME]:
                break
        last = after
        boot = None

        def catch_up() -> Iterator[dict[str, Any]]:
            nonlocal last
            for event in stored(client, last):
                last = event["seq"]
                if _matches(event, container_id, since):
                    yield event
            # events after the replay are live; nothing to do when none were stored

        yield from catch_up()
        silent_since = time.monotonic()
        while True:
            if not sub.poll(1000):
                if time.monotonic() - silent_since > idle_timeout:
                    try:
                        client.call("version")
                    except (Unreachable, CallTimeout):
                        raise
                    silent_since = time.monotonic()
                continue
            silent_since = time.monotonic()
            frames = sub.recv_multipart()
            if len(frames) != 2:
                continue
            try:
                event = unpack(frames[1])
            except WireError:
                continue
            seq = event.get("seq")
            if not isinstance(seq, int):
                continue
            if frames[0] == HEARTBEAT_TOPIC:
                if boot is not None and event.get("boot") != boot or seq > last:
                    boot = event.get("boot")
                    yield from catch_up()
                boot = event.get("boot")
                continue
            boot = event.get("boot", boot)
            if seq <= last:
                continue
            if seq > last + 1:
                yield from catch_up()
                if seq <= last:
                    continue
            last = seq
            if _matches(event, container_id, since):
                yield event
    finally:
        sub.close()
