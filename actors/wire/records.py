"""The records actord keeps in its state dir, defined once for the writers and the readers.

    containers/<id>/container.json          ContainerRecord (the worker, at start)
    containers/<id>/<process>/meta.json     ProcessMeta     (the worker, before the shim runs)
    containers/<id>/<process>/state.json    ProcessState    (the worker, once the process runs)
    containers/<id>/<process>/exit.json     ExitRecord      (the shim, once the process exited)

A reader gets a record only if it has every required member with the right type; members it
does not know are ignored, so a daemon can read what a newer one wrote across an upgrade.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, NotRequired, TypedDict, TypeVar, cast

from actors.wire.codec import WireError
from actors.wire.schema import check_fields, typed_dict_fields

__all__ = ["ContainerDefinition", "ContainerRecord", "ExitRecord", "ProcessMeta", "ProcessState", "exit_record",
           "read_record"]


class ContainerRecord(TypedDict):
    id: str
    bundle: str
    labels: NotRequired[dict[str, str]]
    init: NotRequired[bool]
    """Started with `--init` (tini as PID 1)."""
    created: NotRequired[float]
    cri_log: NotRequired[str]
    """Its init's CRI log (actors/wire/crilog.py), when it has one."""


class ContainerDefinition(TypedDict):
    """A container under a restart policy, in the persistent root: what brings it back after
    it stops, after a daemon crash and after a reboot (`actors/rootdir.py`)."""

    id: str
    bundle: str
    labels: dict[str, str]
    init: bool
    restart: str
    """The policy, as given: `on-failure:3`."""
    restarts: int
    """Restarts so far."""
    streak: int
    """Quick stops in a row: the back-off's exponent."""
    next_attempt: float | None
    """Unix time of the next restart while backing off; None otherwise."""
    stopped: bool
    """Explicitly stopped (a kill), or the policy gave up: no restart, kept until `containers rm`."""
    last_status: int | None
    cri_log: NotRequired[str]
    """The CRI log each of its lives writes to, when it has one."""


class ProcessMeta(TypedDict):
    token: str
    args: list[str]
    mode: NotRequired[str]
    """"create", "exec" or "restore"."""
    tty: NotRequired[bool]


class ProcessState(TypedDict):
    token: str
    system_pid: int
    system_start: NotRequired[int | None]
    """The process's start time (clock ticks since boot): tells it from a later one with its pid."""
    shim_pid: int
    shim_start: NotRequired[int | None]


class ExitRecord(TypedDict):
    status: int
    time: float


R = TypeVar("R", ContainerRecord, ContainerDefinition, ProcessMeta, ProcessState, ExitRecord)

_FIELDS: Final = {kind: typed_dict_fields(kind)
                  for kind in (ContainerRecord, ContainerDefinition, ProcessMeta, ProcessState, ExitRecord)}


def read_record(path: Path, kind: type[R]) -> R | None:
    """The record in `path`; None when it is missing, unreadable or not a `kind`."""
    try:
        data: Any = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        check_fields(kind.__name__, _FIELDS[kind], data, allow_unknown=True)
    except WireError:
        return None
    return cast(R, data)  # checked against `kind` above


def exit_record(status: int, time: float) -> bytes:
    """An ExitRecord as JSON, made without the json module: the shim writes it, and each
    library function a shim runs costs it memory pages (see shimproc/shim.py)."""
    return b'{"status":%d,"time":%r}' % (status, time)
