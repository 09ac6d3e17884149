"""Wait for containers' exits, missing none: before, while and after the daemon restarts.

The wait begins at the event log's last sequence number, taken before anything else is
asked. A container the daemon shows running (or paused) is waited for: its init's next
`exit` event after that number, from the event stream, which replays what it missed
across a reconnect or a daemon restart. A container that is not running has already
exited: its status is the restart policy's last one (restarting, stopped), or the last
init `exit` on record in the event log (a container gone). A container under a restart
policy therefore ends the wait at its first exit after the wait began, not when it stops
for good.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from actorctl.client import Client, DaemonError
from actorctl.client.events import attach, follow, stored

__all__ = ["UnknownContainer", "wait_exits"]

RECONNECT = 600.0
"""Seconds a wait keeps trying while the daemon is away (a restart, an upgrade)."""


class UnknownContainer(Exception):
    """No such container, and no exit of one by that id on record."""


def _last_exit(client: Client, container_id: str) -> int | None:
    """The status of the last init exit of `container_id` the event log holds."""
    status = None
    for event in stored(client, 0, container_id=container_id, types=frozenset({"exit"})):
        if event["pid"] == "init" and event["status"] is not None:
            status = event["status"]
    return status


def _now(client: Client, container_id: str) -> int | None:
    """The container's exit status if it has already exited, None if it runs; UnknownContainer."""
    try:
        state: dict[str, Any] = client.call("containers.state", {"id": container_id})
    except DaemonError as exc:
        if exc.code != "not_found":
            raise
    else:
        if state["status"] in ("restarting", "stopped"):
            status = (state.get("restart") or {}).get("last_status")
            return int(status) if status is not None else _last_exit(client, container_id)
        return None
    status = _last_exit(client, container_id)
    if status is None:
        raise UnknownContainer(f"no such container {container_id!r}, and no exit of one on record")
    return status


def wait_exits(client: Client, container_ids: Sequence[str],
               reconnect: float = RECONNECT) -> Iterator[tuple[str, int]]:
    """(id, exit status) for each of `container_ids`, in their order, each as soon as it and those
    before it are known. UnknownContainer for an id that neither exists nor exited.

    Subscribed to the event stream before the first result: from then on, a daemon going away
    is a reconnect, not a failure."""
    sub = attach(client.call("version")["events_address"], timeout=client.timeout)
    try:
        start = client.call("events.replay", {"after": 2**62})["last_seq"]
        known: dict[str, int] = {}
        waiting: set[str] = set()
        for container_id in dict.fromkeys(container_ids):
            status = _now(client, container_id)
            if status is None:
                waiting.add(container_id)
            else:
                known[container_id] = status
    except BaseException:
        sub.close()
        raise
    order = list(container_ids)

    def ready() -> Iterator[tuple[str, int]]:
        while order and order[0] in known:
            container_id = order.pop(0)
            yield container_id, known[container_id]

    exits = follow(client, "", start, reconnect=reconnect, types=frozenset({"exit"}), sub=sub)
    try:
        yield from ready()
        for event in exits if order else ():
            if event["id"] in waiting and event["pid"] == "init" and event["status"] is not None:
                waiting.discard(event["id"])
                known[event["id"]] = event["status"]
                yield from ready()
                if not order:
                    return
    finally:
        sub.close()
