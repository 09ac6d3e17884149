"""The CRI's ExecSync: a command run to its end in a CRI container, its output and exit code.

It is actord's own exec path, through actorctl's client library: `Client.exec` starts the
process, `Client.logs` (the daemon's one output reader) follows what it writes, stdout and
stderr kept apart by the records' stream, until the process exits; the exit status comes with
the last page (else from `Client.wait`). Answers, as containerd 1.6 answers
(pkg/cri/server/container_execsync.go, its errors through errdefs.ToGRPC):

* no such CRI container (or an actord container that is not one, `lookup.py`): NOT_FOUND;
* a container that does not run: UNKNOWN, "container is in <state> state" (a plain error there);
* a command the runtime cannot start (not found, not executable): UNKNOWN with runc's words
  (containerd's answer too: the start fails, so there is no exit code 126/127; a shell that
  cannot find a command answers 127 itself);
* at the timeout (seconds, 0: none) or when the caller gives up: the process is killed
  (SIGKILL to it alone), its exit waited for, then DEADLINE_EXCEEDED "timeout Ns exceeded".

Output bounds: containerd caps each stream at 16 MiB and so may build an answer its own gRPC
limit (16 MiB) refuses. Here each stream keeps its first STREAM_CAP bytes (the rest is read and
dropped), so the answer always fits the kubelet's 16 MiB. The process's output is kept by the
daemon in files of ANSWER_LIMIT bytes (the exec's `log_limit`, not the daemon's `--log-limit`,
1 MiB by default), so a process that writes fast loses none of what an answer carries to
rotation before it is read: that takes falling 16 MiB behind.

Nothing is left behind: each ExecSync's process has a name of this container's small pool
(`execsync-N`, the lowest one no ExecSync of the container uses now; the daemon refuses a name
for a moment after its process exited, while it clears the process's state: then the next).
The daemon keeps an exited process's output until a process of the same name exits, so a
container's kept ExecSync output is bounded by how many ran at once, not by how many ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client
from actorctl.client.errors import ActordError, Conflict, NotFound
from actors.cri.daemonlink import DaemonLink
from actors.cri.images import said
from actors.cri.lookup import cri_container
from actors.cri.status import Refusal, status_of

__all__ = ["ANSWER_LIMIT", "STREAM_CAP", "ExecSyncs", "OutputBuffer", "ProcessNames"]

logger = logging.getLogger(__name__)

ANSWER_LIMIT = 16 << 20
"""The kubelet's (and this server's) largest gRPC message."""
STREAM_CAP = (ANSWER_LIMIT - (64 << 10)) // 2
"""Bytes of stdout, and of stderr, an answer carries: both together and the message's framing fit
ANSWER_LIMIT."""
KILL_WAIT = 10.0
"""Seconds to wait for a killed process's exit."""
STDOUT, STDERR = 1, 2
NAME_PREFIX = "execsync-"
NAME_TRIES = 4
"""Names tried for one ExecSync: one may still be being cleared of an ExecSync just ended."""


class DeadlinePassed(Exception):
    """The ExecSync's timeout passed, or its caller gave up."""


class OutputBuffer:
    """One stream's output, kept up to `cap` bytes (what comes after is counted, not kept)."""

    def __init__(self, cap: int = STREAM_CAP) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.kept = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.cap - self.kept
        taken = data[:max(room, 0)]
        if taken:
            self.parts.append(taken)
            self.kept += len(taken)
        self.dropped += len(data) - len(taken)

    def value(self) -> bytes:
        return b"".join(self.parts)


class ProcessNames:
    """Each container's ExecSync process names in use: a claim takes the lowest free `execsync-N`,
    and another (`next`) when the daemon refuses that one, until the ExecSync ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: dict[str, set[int]] = {}

    def next(self, container_id: str, held: list[int]) -> str:
        """The lowest number no ExecSync of the container holds, now held by `held`'s owner."""
        with self._lock:
            used = self._in_use.setdefault(container_id, set())
            number = next(n for n in range(len(used) + 1) if n not in used)
            used.add(number)
            held.append(number)
        return f"{NAME_PREFIX}{number}"

    @contextmanager
    def claim(self, container_id: str) -> Iterator[Callable[[], str]]:
        """A source of names for one ExecSync; every name it gave is free again at its end."""
        held: list[int] = []
        try:
            yield lambda: self.next(container_id, held)
        finally:
            with self._lock:
                used = self._in_use[container_id] if held else set()
                used.difference_update(held)
                if held and not used:
                    del self._in_use[container_id]


class ExecSyncs:
    """ExecSync over the daemon link."""

    def __init__(self, link: DaemonLink) -> None:
        self.link = link
        self.names = ProcessNames()

    def run(self, request: api_pb2.ExecSyncRequest, context: grpc.ServicerContext) -> api_pb2.ExecSyncResponse:
        client = self.link.client()
        container = cri_container(client, request.container_id)
        if not request.cmd:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "ExecSync: cmd is empty: give the command to run")
        if request.timeout < 0:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"ExecSync: timeout {request.timeout} is negative")
        if container.status != "running":
            raise Refusal(grpc.StatusCode.UNKNOWN, f"failed to exec in container: container {container.id} is "
                                                   f"in {container.status} state, not running")
        deadline = None if request.timeout == 0 else time.monotonic() + request.timeout
        with self.names.claim(container.id) as names:
            after = client.last_event_seq()
            name = self._exec(client, container.id, list(request.cmd), names)
            try:
                return self._collect(client, container.id, name, after, deadline, context)
            except DeadlinePassed:
                self._kill(client, container.id, name, after)
                raise Refusal(grpc.StatusCode.DEADLINE_EXCEEDED, f"failed to exec in container: timeout "
                                                                 f"{request.timeout}s exceeded: context deadline "
                                                                 "exceeded") from None

    @staticmethod
    def _exec(client: Client, container_id: str, cmd: list[str], names: Callable[[], str]) -> str:
        """Start the command; its process name. A name whose last process the daemon has not
        cleared away yet is refused (a conflict): the next free one is tried."""
        for _ in range(NAME_TRIES):
            name = names()
            try:
                client.exec(container_id, cmd, name=name, log_limit=ANSWER_LIMIT)
            except Conflict as exc:
                refused = exc
                continue
            except ActordError as exc:
                raise Refusal(status_of(exc), f"failed to exec in container: {said(exc)}") from None
            return name
        raise Refusal(status_of(refused), f"failed to exec in container: {said(refused)}")

    @staticmethod
    def _collect(client: Client, container_id: str, name: str, after: int, deadline: float | None,
                 context: grpc.ServicerContext) -> api_pb2.ExecSyncResponse:
        """Follow the process's output until it exits; DeadlinePassed at the deadline."""

        def check() -> None:
            if (deadline is not None and time.monotonic() >= deadline) or not context.is_active():
                raise DeadlinePassed()

        stdout, stderr = OutputBuffer(), OutputBuffer()
        stream = client.logs(container_id, name, follow=True, idle=check)
        for record in stream:
            (stderr if record.stream == STDERR else stdout).add(record.data)
            check()
        if stream.dropped:
            logger.warning("ExecSync %s in %s: part of its output was rotated away before it was read (it wrote "
                           "faster than it was read)", name, container_id)
        status = stream.status
        if status is None:
            status = client.wait(container_id, name, after=after, timeout=KILL_WAIT).status
        return api_pb2.ExecSyncResponse(stdout=stdout.value(), stderr=stderr.value(), exit_code=status)

    @staticmethod
    def _kill(client: Client, container_id: str, name: str, after: int) -> None:
        """SIGKILL the process alone and wait for its exit (it may have exited meanwhile)."""
        try:
            client.kill(container_id, process=name)
        except (NotFound, Conflict):
            pass
        client.wait(container_id, name, after=after, timeout=KILL_WAIT)
