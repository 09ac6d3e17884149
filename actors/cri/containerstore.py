"""The CRI's containers as the kubelet sees them, kept in the persistent root beside their pod:
`<root>/pods/<pod id>/containers/<container id>.json`, one record each, replaced atomically at
each change, so a restarted daemon lists them again (and RemovePodSandbox's removal of the pod
dir takes them along).

A record's state only moves forward:

    (none) --create--> CREATED --start--> RUNNING --exit seen--> EXITED --remove--> (none)
                          |                                         ^
                          +------- start failed / pod stopped ------+

What runs is actord's: the record says what the CRI made and what it saw (an exit's code,
time and reason once it is known). The name `<name>_<pod name>_<pod namespace>_<pod uid>_<attempt>`
(containerd's) is reserved while the record exists.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from actors.pods.store import POD_ID
from actors.statedir import write_json_atomic

__all__ = ["ContainerRecord", "ContainerState", "ContainerStore", "IllegalMove", "NameTaken"]

logger = logging.getLogger(__name__)

CONTAINERS_DIR = "containers"


class ContainerState(enum.Enum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    EXITED = "EXITED"


MOVES = {
    None: {ContainerState.CREATED},
    ContainerState.CREATED: {ContainerState.RUNNING, ContainerState.EXITED},
    ContainerState.RUNNING: {ContainerState.EXITED},
    ContainerState.EXITED: set(),
}
"""The state machine of the module's docstring: from a state, the states a record may move to."""


class IllegalMove(Exception):
    """A move the state machine forbids (a bug: callers check the state first)."""


class NameTaken(Exception):
    """A container with these metadata exists in the pod already."""


@dataclass(frozen=True)
class ContainerRecord:
    """Everything ContainerStatus, ListContainers and a restarted daemon need of a CRI container."""

    id: str
    pod_id: str
    name: str
    attempt: int
    reserved_name: str
    state: ContainerState
    image: str
    """The image as the config named it."""
    image_ref: str
    """The image's id (its config's digest), as containerd's ImageRef."""
    bundle: str
    log_path: str
    """The CRI log's path ("" without the pod's log_directory or the config's log_path)."""
    created_at: int
    """Nanoseconds since the epoch, as every time here."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mapping[str, Any], ...] = ()
    """The config's mounts (container_path, host_path, readonly, ...), as ContainerStatus shows them."""
    stop_signal: str = ""
    """The image's StopSignal ("" : SIGTERM)."""
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    start_seq: int = 0
    """The daemon's event sequence number just before the start: its exit and OOM come after it."""

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["state"] = self.state.value
        record["labels"], record["annotations"] = dict(self.labels), dict(self.annotations)
        record["mounts"] = [dict(mount) for mount in self.mounts]
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        """A record as `to_json` wrote it; KeyError, TypeError or ValueError if it is not one."""
        values = dict(data)
        values["state"] = ContainerState(values["state"])
        values["mounts"] = tuple(values.get("mounts") or ())
        record = cls(**values)
        if not POD_ID.match(record.id) or not POD_ID.match(record.pod_id):
            raise ValueError(f"bad container or pod id {record.id!r} {record.pod_id!r}")
        return record


class ContainerStore:
    """The records under `<pods_dir>/<pod id>/containers/`, their names and a lock per container."""

    def __init__(self, pods_dir: Path) -> None:
        self.pods_dir = pods_dir
        self._lock = threading.Lock()
        self._records: dict[str, ContainerRecord] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}

    def path(self, pod_id: str, container_id: str) -> Path:
        return self.pods_dir / pod_id / CONTAINERS_DIR / f"{container_id}.json"

    def load(self) -> list[ContainerRecord]:
        """Read every record back (a daemon start); a damaged one is logged and left as it is."""
        for path in sorted(self.pods_dir.glob(f"*/{CONTAINERS_DIR}/*.json")):
            try:
                record = ContainerRecord.from_json(json.loads(path.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error("CRI container record %s cannot be read (%s); left as it is", path, exc)
                continue
            with self._lock:
                self._records[record.id] = record
                self._names[record.reserved_name] = record.id
                self._locks[record.id] = threading.Lock()
        return self.all()

    def reserve(self, reserved_name: str, container_id: str) -> None:
        """Take the name for the id (and make its lock); NameTaken if a container has it."""
        with self._lock:
            taken = self._names.get(reserved_name)
            if taken is not None:
                raise NameTaken(f"container name {reserved_name!r} is already reserved for {taken}")
            self._names[reserved_name] = container_id
            self._locks[container_id] = threading.Lock()

    def release(self, reserved_name: str, container_id: str) -> None:
        """Forget the id: its record, name and lock (once its file is gone, or a create failed)."""
        with self._lock:
            self._records.pop(container_id, None)
            if self._names.get(reserved_name) == container_id:
                del self._names[reserved_name]
            self._locks.pop(container_id, None)

    @contextlib.contextmanager
    def locked(self, container_id: str) -> Iterator[ContainerRecord | None]:
        """Hold the container's lock; yields its record once the lock is had (None: none)."""
        with self._lock:
            lock = self._locks.get(container_id)
        if lock is None:
            yield None
            return
        with lock:
            yield self.get(container_id)

    def get(self, container_id: str) -> ContainerRecord | None:
        with self._lock:
            return self._records.get(container_id)

    def all(self) -> list[ContainerRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda record: (record.created_at, record.id))

    def of_pod(self, pod_id: str) -> list[ContainerRecord]:
        return [record for record in self.all() if record.pod_id == pod_id]

    def resolve(self, id_or_prefix: str) -> str | None:
        """The id that is `id_or_prefix` or the only one starting with it; None otherwise
        (none, or several: containerd's truncindex refuses an ambiguous prefix)."""
        if not id_or_prefix:
            return None
        with self._lock:
            if id_or_prefix in self._records:
                return id_or_prefix
            found = [container_id for container_id in self._records if container_id.startswith(id_or_prefix)]
        return found[0] if len(found) == 1 else None

    def create(self, record: ContainerRecord) -> None:
        """Write a new record (its name reserved)."""
        self._check(None, record.state)
        self._write(record)

    def move(self, record: ContainerRecord, state: ContainerState, **changes: Any) -> ContainerRecord:
        """The record in `state` with `changes`, written; IllegalMove if the machine forbids it."""
        if record.state is not state:
            self._check(record.state, state)
        moved = replace(record, state=state, **changes)
        self._write(moved)
        return moved

    def remove(self, record: ContainerRecord) -> None:
        """Delete the record's file and forget it."""
        self.path(record.pod_id, record.id).unlink(missing_ok=True)
        self.release(record.reserved_name, record.id)

    def forget_pod(self, pod_id: str) -> None:
        """Forget the records of a pod whose dir (and so their files) is gone."""
        for record in self.of_pod(pod_id):
            self.release(record.reserved_name, record.id)

    @staticmethod
    def _check(before: ContainerState | None, after: ContainerState) -> None:
        if after not in MOVES[before]:
            raise IllegalMove(f"a CRI container cannot move from {before} to {after}")

    def _write(self, record: ContainerRecord) -> None:
        path = self.path(record.pod_id, record.id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(path, record.to_json(), durable=True)
        with self._lock:
            self._records[record.id] = record
