"""The pod store: one directory per pod in the persistent root, `<root>/pods/<pod id>/`.

    pod.json          the record (PodRecord), replaced atomically at each change
    resolv.conf       the pod's DNS config, hostname, hosts: the files its containers bind-mount
    hostname
    hosts
    cni-result.json   the pod's last CNI ADD (actors/podnet/results.py), for DEL and its IPs
    bundle/           the infra container's bundle (config.json, an empty read-only rootfs)

In memory the store keeps every record, the CRI names taken (`<name>_<namespace>_<uid>_<attempt>`,
one pod per name, as containerd reserves them) and a lock per pod: the CRI's gRPC threads
serialize their calls on one pod and run those on different pods at once. A daemon start
reads the records back (`load`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from actors.pods.states import PodState, check_transition
from actors.statedir import write_json_atomic
from actors.treeremoval import remove_tree

__all__ = ["CNI_RESULT", "POD_ID", "AmbiguousId", "NameTaken", "PodMetadata", "PodRecord", "PodStore", "new_pod_id",
           "read_records"]

logger = logging.getLogger(__name__)

POD_ID = re.compile(r"[0-9a-f]{64}\Z")
RECORD = "pod.json"
CNI_RESULT = "cni-result.json"
"""The pod's kept CNI ADD result, in its dir."""


def new_pod_id() -> str:
    """64 random hex characters, as containerd's sandbox ids."""
    return secrets.token_hex(32)


class NameTaken(Exception):
    """A pod with these metadata exists already (its id is `pod_id`)."""

    def __init__(self, name: str, pod_id: str) -> None:
        super().__init__(f"pod sandbox name {name!r} is already reserved for {pod_id}")
        self.pod_id = pod_id


class AmbiguousId(Exception):
    """An id prefix that more than one pod's id starts with."""


@dataclass(frozen=True)
class PodMetadata:
    """The CRI's PodSandboxMetadata."""

    name: str
    uid: str
    namespace: str
    attempt: int = 0

    @property
    def reserved_name(self) -> str:
        """The name the CRI reserves for the pod, containerd's `<name>_<namespace>_<uid>_<attempt>`."""
        return f"{self.name}_{self.namespace}_{self.uid}_{self.attempt}"


@dataclass(frozen=True)
class PodRecord:
    """Everything a pod's later calls (stop, remove, status, list) and a restarted daemon need."""

    id: str
    metadata: PodMetadata
    state: PodState
    created_at: int
    """Nanoseconds since the epoch."""
    netns: str
    """The bind-mounted network namespace's path; "" with the host's network."""
    infra_id: str
    """The actord container of the pod's infra process."""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    hostname: str = ""
    log_directory: str = ""
    runtime_handler: str = ""
    port_mappings: tuple[Mapping[str, Any], ...] = ()
    """portmap's entries (hostPort, containerPort, protocol, hostIP)."""

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["state"] = self.state.name
        record["labels"], record["annotations"] = dict(self.labels), dict(self.annotations)
        record["port_mappings"] = [dict(mapping) for mapping in self.port_mappings]
        return record

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodRecord:
        """A record as `to_json` wrote it; KeyError, TypeError or ValueError if it is not one."""
        values = dict(data)
        values["metadata"] = PodMetadata(**values["metadata"])
        values["state"] = PodState[values["state"]]
        values["port_mappings"] = tuple(values.get("port_mappings") or ())
        record = cls(**values)
        if not POD_ID.match(record.id):
            raise ValueError(f"bad pod id {record.id!r}")
        return record


def read_records(directory: Path) -> list[PodRecord]:
    """The records of every pod under `directory`, by id; a damaged one is logged and skipped
    (left as it is for an operator)."""
    records = []
    for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
        if not POD_ID.match(entry.name):
            continue
        try:
            records.append(PodRecord.from_json(json.loads((entry / RECORD).read_bytes())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("pod %s: its record cannot be read (%s); left as it is", entry.name, exc)
    return records


class PodStore:
    """The records under `directory` (`<root>/pods`), their names and locks."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._records: dict[str, PodRecord] = {}
        self._names: dict[str, str] = {}
        self._pod_locks: dict[str, threading.Lock] = {}

    def pod_dir(self, pod_id: str) -> Path:
        return self.directory / pod_id

    def load(self) -> list[PodRecord]:
        """Read every pod's record back (a daemon start); a damaged one is logged and skipped."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for record in read_records(self.directory):
            with self._lock:
                self._records[record.id] = record
                self._names[record.metadata.reserved_name] = record.id
                self._pod_locks[record.id] = threading.Lock()
        return self.all()

    def reserve(self, metadata: PodMetadata) -> str:
        """A new pod id with its name reserved and its lock made; NameTaken if the name is."""
        name = metadata.reserved_name
        with self._lock:
            taken = self._names.get(name)
            if taken is not None:
                raise NameTaken(name, taken)
            pod_id = new_pod_id()
            self._names[name] = pod_id
            self._pod_locks[pod_id] = threading.Lock()
        return pod_id

    def release(self, pod_id: str, metadata: PodMetadata) -> None:
        """Forget a pod: its record, name and lock (after its dir is gone, or a failed run)."""
        with self._lock:
            self._records.pop(pod_id, None)
            if self._names.get(metadata.reserved_name) == pod_id:
                del self._names[metadata.reserved_name]
            self._pod_locks.pop(pod_id, None)

    @contextlib.contextmanager
    def locked(self, pod_id: str) -> Iterator[PodRecord | None]:
        """Hold the pod's lock; yields its record as it is once the lock is had (None: no such pod,
        or it was removed while we waited)."""
        with self._lock:
            lock = self._pod_locks.get(pod_id)
        if lock is None:
            yield None
            return
        with lock:
            yield self.get(pod_id)

    def known(self, pod_id: str) -> bool:
        """Whether the id is a pod's, or reserved by a run under way."""
        with self._lock:
            return pod_id in self._pod_locks

    def unrecorded(self) -> list[str]:
        """The ids of pod dirs without a record: what a daemon killed during a run left (a dir
        whose record exists but cannot be read is not one: it is left for an operator)."""
        with self._lock:
            known = set(self._pod_locks)
        entries = sorted(self.directory.iterdir()) if self.directory.is_dir() else []
        return [entry.name for entry in entries
                if POD_ID.match(entry.name) and entry.name not in known and not (entry / RECORD).exists()]

    def get(self, pod_id: str) -> PodRecord | None:
        with self._lock:
            return self._records.get(pod_id)

    def all(self) -> list[PodRecord]:
        with self._lock:
            return sorted(self._records.values(), key=lambda record: (record.created_at, record.id))

    def resolve(self, id_or_prefix: str) -> str | None:
        """The id of the pod whose id is `id_or_prefix`, or the only one it starts with (as
        containerd looks sandboxes up); None when none; AmbiguousId when several."""
        if not id_or_prefix:
            return None
        with self._lock:
            if id_or_prefix in self._records:
                return id_or_prefix
            found = [pod_id for pod_id in self._records if pod_id.startswith(id_or_prefix)]
        if len(found) > 1:
            raise AmbiguousId(f"pod sandbox id prefix {id_or_prefix!r} matches {len(found)} pods")
        return found[0] if found else None

    def create(self, record: PodRecord) -> None:
        """Write a new pod's record (its id reserved): the run's last step."""
        check_transition(None, record.state)
        self._write(record)

    def move(self, record: PodRecord, state: PodState) -> PodRecord:
        """The record in `state` (written when it changed); IllegalTransition if the table forbids it."""
        check_transition(record.state, state)
        if record.state is state:
            return record
        moved = replace(record, state=state)
        self._write(moved)
        return moved

    def remove(self, record: PodRecord) -> None:
        """Delete the pod's dir and forget it; the pod must be NOTREADY."""
        check_transition(record.state, None)
        self.remove_dir(record.id)
        self.release(record.id, record.metadata)

    def remove_dir(self, pod_id: str) -> None:
        """Delete the pod's dir, however far a run got (OSError if something stays)."""
        remove_tree(self.pod_dir(pod_id), missing_ok=True)

    def _write(self, record: PodRecord) -> None:
        self.pod_dir(record.id).mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(self.pod_dir(record.id) / RECORD, record.to_json(), durable=True)
        with self._lock:
            self._records[record.id] = record
