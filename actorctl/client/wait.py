"""`Client.wait`: how a process ended, one answer whatever the daemon still remembers of it.

The wait begins at a sequence number of the event log (`after`; default: the newest one when
the wait first reaches the daemon). Its answer, for the process (`init` by default):

1. its first `exit` after that number, if the event log holds one already;
2. the container runs (`starting`, `running`, `paused`, `stopping`) and so does the process:
   its first `exit` after that number, from the event stream, which replays what it missed
   across a reconnect or a daemon restart. So a container under a restart policy ends the
   wait at its first exit after the wait began, not when the policy gives up;
3. the container is `restarting` or `stopped` (a restart policy keeps it) and the process is
   its init: the policy's `last_status`, which the daemon keeps even once the event log has
   rotated past that exit (without one, as after a reboot: as 4, else as 2);
4. the container is gone, or the process is not among its processes: its last `exit` in the
   event log;
5. none of these: NotFound.

Once begun, a daemon that goes away (a restart, an upgrade) is waited for, up to `reconnect`
seconds, and the wait goes on where it was: the event log lets it miss no exit meanwhile.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from actorctl.client.errors import NotFound, Timeout, Unreachable
from actorctl.client.types import Container, Event, ExitResult

if TYPE_CHECKING:
    import zmq

    from actorctl.client.api import Client
    from actors.wire.events import EventRecord

__all__ = ["RECONNECT", "wait_for_exit"]

RECONNECT = 600.0
"""Seconds a begun wait keeps trying while the daemon is away (a restart, an upgrade)."""
RETRY_INTERVAL = 0.2
"""Seconds between attempts to reach a daemon that is away."""
RUNNING = frozenset({"starting", "running", "paused", "stopping"})
KEPT_BY_POLICY = frozenset({"restarting", "stopped"})
EXIT = frozenset({"exit"})


def _exit_of(process: str, record: EventRecord) -> ExitResult | None:
    """The exit an `exit` event records, if it is of `process` and says how it ended."""
    status = record.get("status")
    if record.get("pid") != process or status is None:
        return None
    return ExitResult(record["id"], process, status, Event.from_wire(record))


def _exits(client: Client, container_id: str, process: str, after: int) -> list[ExitResult]:
    """The process's exits that the event log holds after sequence number `after`, oldest first."""
    from actorctl.client.events import stored

    found = (_exit_of(process, record) for record in stored(client, after, container_id=container_id, types=EXIT))
    return [result for result in found if result is not None]


def _state(client: Client, container_id: str) -> Container | None:
    try:
        return client.container(container_id)
    except NotFound:
        return None


def _settled(client: Client, container_id: str, process: str, after: int) -> ExitResult | None:
    """The answer if it is known without waiting (rules 1, 3, 4, 5 of the module), else None."""
    later = _exits(client, container_id, process, after)
    if later:
        return later[0]
    container = _state(client, container_id)
    if container is not None and container.status in RUNNING and (
            container.process(process) is not None or (process == "init" and container.status == "starting")):
        return None
    if container is not None and container.status in KEPT_BY_POLICY and process == "init":
        if container.restart is not None and container.restart.last_status is not None:
            return ExitResult(container_id, process, container.restart.last_status, None)
        earlier = _exits(client, container_id, process, 0)
        return earlier[-1] if earlier else None
    earlier = _exits(client, container_id, process, 0)
    if earlier:
        return earlier[-1]
    if container is None:
        raise NotFound("not_found", f"no such container {container_id!r}, and no exit of one on record")
    raise NotFound("not_found", f"no process {process!r} in container {container_id!r}, and no exit of one "
                                "on record")


def _begin(client: Client, container_id: str, process: str, after: int,
           ) -> tuple[ExitResult | None, zmq.Socket[bytes] | None]:
    """The answer if it is known, else a subscription to the event stream to wait on."""
    from actorctl.client.events import attach

    sub = attach(client.version().events_address, timeout=client.timeout)
    try:
        result = _settled(client, container_id, process, after)
    except BaseException:
        sub.close()
        raise
    if result is not None:
        sub.close()
        return result, None
    return None, sub


def wait_for_exit(client: Client, container_id: str, process: str = "init", *, after: int | None = None,
                  timeout: float | None = None, reconnect: float = RECONNECT) -> ExitResult:
    """See the module: how `process` of `container_id` ended, or ends, after sequence number
    `after`. NotFound (rule 5), Timeout after `timeout` seconds, Unreachable if the daemon
    cannot be reached when the wait begins or stays away `reconnect` seconds."""
    from actorctl.client.events import follow

    deadline = None if timeout is None else time.monotonic() + timeout
    if after is None:
        after = client.last_event_seq()  # the wait begins here: failing to reach the daemon now is an error
    gave_up_at = time.monotonic() + reconnect
    while True:
        try:
            result, sub = _begin(client, container_id, process, after)
            break
        except (Unreachable, Timeout):
            if time.monotonic() > gave_up_at or (deadline is not None and time.monotonic() > deadline):
                raise
            time.sleep(RETRY_INTERVAL)
    if result is not None:
        return result
    for record in follow(client, "", after, container_id=container_id, reconnect=reconnect, types=EXIT,
                         deadline=deadline, sub=sub):
        result = _exit_of(process, record)
        if result is not None:
            return result
    raise Timeout(f"process {process} of container {container_id} did not exit within {timeout:g}s")
