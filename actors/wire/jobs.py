"""The runtime jobs a worker runs for the Supervisor (`RuntimeTask.job`), each with its named params."""

from __future__ import annotations

from typing import Any, Final, TypedDict

from actors.wire.codec import WireError
from actors.wire.schema import Field, check_fields, typed_dict_fields

__all__ = [
    "JOBS",
    "CheckpointParams",
    "ControlParams",
    "DeleteCheckpointParams",
    "DiscardParams",
    "KillAllParams",
    "ListCheckpointsParams",
    "NoParams",
    "OrphanParams",
    "SweepParams",
    "UpdateParams",
    "check_job",
]


class NoParams(TypedDict):
    """pause, resume: `runc pause|resume <id>`."""


class KillAllParams(TypedDict):
    """`runc kill --all <id> <signal>`."""

    signal: int


class UpdateParams(TypedDict):
    """`runc update` with these limits (memory_limit, cpu_shares, cpu_quota, cpu_period, pids_limit,
    memory_swap: numbers; cpuset_cpus, cpuset_mems: lists such as `0-2,4`)."""

    limits: dict[str, int | str]


class CheckpointParams(TypedDict):
    """`runc checkpoint` into `<bundle>/checkpoints/<name>`; `options` the CRIU flags."""

    bundle: str
    name: str
    exit: bool
    options: dict[str, bool]


class ListCheckpointsParams(TypedDict):
    bundle: str


class DeleteCheckpointParams(TypedDict):
    bundle: str
    name: str


class ControlParams(TypedDict):
    """A control message (a `ShimControl`'s members) to the shim of process `token`."""

    token: str
    control: dict[str, Any]


class OrphanParams(TypedDict):
    """A process whose shim died: kill what is left of it, find its status."""

    token: str
    process: str
    system_pid: int
    system_start: int | None
    paused: bool


class DiscardParams(TypedDict):
    """A damaged container: kill each (pid, start time) its state names, delete its runc container."""

    victims: list[tuple[int, int | None]]


class SweepParams(TypedDict):
    """At start-up: delete runc containers without a state dir under `containers`."""

    containers: str


JOBS: Final[dict[str, type]] = {
    "kill_all": KillAllParams,
    "pause": NoParams,
    "resume": NoParams,
    "update": UpdateParams,
    "checkpoint": CheckpointParams,
    "list_checkpoints": ListCheckpointsParams,
    "delete_checkpoint": DeleteCheckpointParams,
    "control": ControlParams,
    "orphan": OrphanParams,
    "discard": DiscardParams,
    "sweep": SweepParams,
}
"""job name -> the TypedDict of its params."""

_FIELDS: Final[dict[str, list[Field]]] = {job: typed_dict_fields(params) for job, params in JOBS.items()}


def check_job(job: str, params: dict[str, Any]) -> None:
    """`WireError` unless `job` is a known job and `params` exactly its params."""
    fields = _FIELDS.get(job)
    if fields is None:
        raise WireError(f"unknown runtime job {job!r}")
    check_fields(f"job {job}", fields, params)
