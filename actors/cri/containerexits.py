"""How the CRI learns that a container of its own ended, without anyone calling StopContainer.

It asks the daemon when it needs to know (ContainerStatus, ListContainers, StopContainer,
RemoveContainer, StopPodSandbox): a RUNNING record whose actord container no longer runs has
ended, and `Client.wait` from the event sequence number noted before its start answers how
(the exit event the daemon recorded: also one it recorded at its restore, for a container that
ended while it was down, as its shim outlived it). An `oom` event of the container after that
number makes the reason OOMKilled. The exit is then written into the record, so it is known
however long the event log keeps it.
"""

from __future__ import annotations

import time

from actorctl.client import Client, NotFound, Timeout
from actorctl.client.events import stored
from actors.cri.containerstore import ContainerRecord

__all__ = ["ACTIVE", "UNKNOWN_EXIT", "ExitSeen", "exit_of", "reason_for", "wait_ended"]

ACTIVE = frozenset({"starting", "running", "paused", "stopping"})
"""The statuses of an actord container whose init has not ended."""
UNKNOWN_EXIT = 255
"""The exit code of a container whose exit is on no record (containerd's unknownExitCode)."""
OOM = frozenset({"oom"})
POLL_INTERVAL = 0.05
"""Seconds between two looks at a container StopContainer waits for."""


class ExitSeen:
    """An ended container's exit: code, time (ns) and reason, as the record keeps them."""

    def __init__(self, exit_code: int, finished_at: int, reason: str, message: str = "") -> None:
        self.exit_code = exit_code
        self.finished_at = finished_at
        self.reason = reason
        self.message = message

    def changes(self) -> dict[str, object]:
        """The record's fields this exit sets."""
        return {"exit_code": self.exit_code, "finished_at": self.finished_at, "reason": self.reason,
                "message": self.message, "pid": 0}


def reason_for(exit_code: int, oom: bool) -> str:
    """containerd's reasons: OOMKilled, Completed (exit 0) or Error."""
    if oom:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def exit_of(client: Client, record: ContainerRecord) -> ExitSeen:
    """How the ended container `record` ended, as the daemon's event log says (255 and reason
    Unknown when it holds no exit of it, e.g. rotated away while no one asked)."""
    try:
        result = client.wait(record.id, after=record.start_seq, timeout=0)
    except (NotFound, Timeout):
        return ExitSeen(UNKNOWN_EXIT, time.time_ns(), "Unknown", "the daemon holds no record of its exit")
    oom = any(True for _ in stored(client, record.start_seq, container_id=record.id, types=OOM))
    finished = int(result.event.timestamp * 1e9) if result.event is not None else time.time_ns()
    # a process that ends at once may end before the start's answer set started_at
    return ExitSeen(result.status, max(finished, record.started_at), reason_for(result.status, oom))


def wait_ended(client: Client, container_id: str, seconds: float) -> bool:
    """Whether the actord container's init has ended (it is gone, or no longer active) within
    `seconds`. It asks the daemon every POLL_INTERVAL through the CRI's own client rather than
    following the event stream: the daemon's stop interrupts that client (Unreachable), so no
    gRPC thread outlives the daemon waiting for a StopContainer's timeout."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.container(container_id).status not in ACTIVE:
                return True
        except NotFound:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
