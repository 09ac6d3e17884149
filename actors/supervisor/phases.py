"""The phases of containers and processes, the table of their legal moves, and their records.

`MOVES` lists every transition of the two state machines that actors/supervisor/lifecycle.py
takes (its docstring tells their story); docs/architecture.md draws them (`diagram()`), and a
test checks the drawing against this table. `move` is the one way a record's phase changes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from actors.supervisor.restart import RestartPolicy
from actors.wire.messages import StartTask
from actors.wire.records import ContainerDefinition

__all__ = [
    "GONE",
    "LISTED",
    "MOVES",
    "NOBODY",
    "PUBLISHED_STATUS",
    "SHOWN",
    "Client",
    "Container",
    "ContainerPhase",
    "IllegalTransition",
    "Process",
    "ProcessPhase",
    "diagram",
    "move",
]

Client = tuple[bytes | None, str | None]
"""(route, request id) of a client waiting for a reply; route None: nobody waits."""

NOBODY: Client = (None, None)


class ProcessPhase(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    EXITED = "exited"
    """Its status is known; an init's exit event waits for the container's other processes."""
    CLEANING = "cleaning"
    """Its exit event is out; waiting for its shim to be gone and its exit to be on record."""


class ContainerPhase(enum.Enum):
    PARKED = "parked"
    STARTING = "starting"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    STOPPING = "stopping"
    REMOVED = "removed"
    DISCARDING = "discarding"
    RESTARTING = "restarting"
    """Under a restart policy, backing off until its next attempt."""
    STOPPED = "stopped"
    """Under a restart policy, not to be restarted; kept until `containers rm`."""


LISTED = frozenset({ContainerPhase.RUNNING, ContainerPhase.PAUSING, ContainerPhase.PAUSED, ContainerPhase.RESUMING})
"""Phases in which a container runs: clients can signal it, exec in it, pause it..."""

SHOWN = LISTED | {ContainerPhase.RESTARTING, ContainerPhase.STOPPED}
"""Phases in which clients see a container (list, state, rm)."""

PUBLISHED_STATUS = {ContainerPhase.RUNNING: "running", ContainerPhase.PAUSING: "running",
                    ContainerPhase.PAUSED: "paused", ContainerPhase.RESUMING: "paused"}
"""The `status` clients see: a pause or resume under way does not change it until it is done."""

_P, _C = ProcessPhase, ContainerPhase
GONE = None
"""The target of a transition that drops the record."""

MOVES: dict[str, dict[str, tuple[frozenset[Any], Any]]] = {
    "process": {
        "start": (frozenset({GONE}), _P.STARTING),
        "started": (frozenset({_P.STARTING}), _P.RUNNING),
        "start failed": (frozenset({_P.STARTING}), GONE),
        "restored": (frozenset({GONE}), _P.RUNNING),
        "exit": (frozenset({_P.RUNNING}), _P.EXITED),
        "exit emitted": (frozenset({_P.EXITED}), _P.CLEANING),
        "cleaned up": (frozenset({_P.CLEANING}), GONE),
    },
    "container": {
        "start": (frozenset({GONE}), _C.STARTING),
        "start behind predecessor": (frozenset({GONE}), _C.PARKED),
        "predecessor cleaned up": (frozenset({_C.PARKED}), _C.STARTING),
        "init started": (frozenset({_C.STARTING}), _C.RUNNING),
        "init start failed": (frozenset({_C.STARTING}), GONE),
        "restored running": (frozenset({GONE}), _C.RUNNING),
        "restored paused": (frozenset({GONE}), _C.PAUSED),
        "pause": (frozenset({_C.RUNNING}), _C.PAUSING),
        "paused": (frozenset({_C.PAUSING}), _C.PAUSED),
        "pause failed": (frozenset({_C.PAUSING}), _C.RUNNING),
        "resume": (frozenset({_C.PAUSED}), _C.RESUMING),
        "resumed": (frozenset({_C.RESUMING}), _C.RUNNING),
        "resume failed": (frozenset({_C.RESUMING}), _C.PAUSED),
        "init exited": (frozenset({_C.RUNNING, _C.PAUSING, _C.PAUSED, _C.RESUMING}), _C.STOPPING),
        "last process exited": (frozenset({_C.STOPPING}), _C.REMOVED),
        "init cleaned up": (frozenset({_C.REMOVED}), GONE),
        "discard": (frozenset({GONE}), _C.DISCARDING),
        "discarded": (frozenset({_C.DISCARDING}), GONE),
        "restart scheduled": (frozenset({GONE}), _C.RESTARTING),
        "kept stopped": (frozenset({GONE}), _C.STOPPED),
        "restart due": (frozenset({_C.RESTARTING}), _C.STARTING),
        "restart due behind predecessor": (frozenset({_C.RESTARTING}), _C.PARKED),
        "restart failed": (frozenset({_C.STARTING}), _C.RESTARTING),
        "restart failed, given up": (frozenset({_C.STARTING}), _C.STOPPED),
        "removed by client": (frozenset({_C.RESTARTING, _C.STOPPED}), GONE),
    },
}
"""machine -> transition -> (phases it may start from, the phase it leads to); GONE: no record."""


class IllegalTransition(Exception):
    """A transition from a phase the machine does not allow it from: a bug in the caller."""


def diagram(machine: str) -> str:
    """`MOVES[machine]` as a mermaid state diagram."""
    lines = ["stateDiagram-v2"]
    for name, (sources, target) in MOVES[machine].items():
        for source in sorted(sources, key=lambda phase: "" if phase is GONE else phase.value):
            start = "[*]" if source is GONE else source.value
            end = "[*]" if target is GONE else target.value
            lines.append(f"    {start} --> {end}: {name}")
    return "\n".join(lines)


def move(machine: str, record: Process | Container | None, transition: str) -> Any:
    """The phase `transition` leads `record` to (None: a new record); IllegalTransition if it
    may not be taken from the record's phase."""
    sources, target = MOVES[machine][transition]
    phase = None if record is None else record.phase
    if phase not in sources:
        what = "" if record is None else f" {record.describe()}"
        shown = "nothing" if phase is None else phase.value
        raise IllegalTransition(f"{machine}{what}: {transition!r} from {shown}")
    if record is not None and target is not GONE:
        record.phase = target
    return target


@dataclass
class Process:
    """One container process, from its start request to the removal of its state."""

    token: str
    container_id: str
    name: str
    phase: ProcessPhase = ProcessPhase.STARTING
    client: Client = NOBODY
    """Who waits for the start's reply (an exec's; an init's is its container's)."""
    system_pid: int = 0
    shim_pid: int = 0
    pidfd: int = -1
    system_start: int | None = None
    """Start time of the container process, to tell it from a later process with the same pid."""
    args: list[str] = field(default_factory=list)
    tty: bool = False
    early_exit: int | None = None
    shim_gone: bool = False
    exit_recorded: bool = False
    status: int | None = None

    def describe(self) -> str:
        return f"{self.container_id}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.name, "system_pid": self.system_pid, "shim_pid": self.shim_pid,
                "args": self.args, "tty": self.tty}


@dataclass
class Container:
    id: str
    bundle: str
    labels: dict[str, str]
    init_token: str
    init: bool = False
    """Started with `--init`: tini is PID 1 and the bundle's process its child."""
    phase: ContainerPhase = ContainerPhase.STARTING
    client: Client = NOBODY
    """Who waits for the start's reply."""
    processes: dict[str, Process] = field(default_factory=dict)
    """name -> process, for every process not yet reported (starting, running, an exited init)."""
    exec_count: int = 0
    start_task: StartTask | None = None
    """The start task of a parked container, submitted once its predecessor is cleaned up."""
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    restarts: int = 0
    """Restarts so far (what on-failure:MAX limits)."""
    streak: int = 0
    """Quick stops in a row: the back-off's exponent."""
    next_attempt: float | None = None
    """Unix time of the next restart, while restarting."""
    stop_requested: bool = False
    """Explicitly stopped: a stop signal was sent to its init (or it was stopped before)."""
    oom: bool = False
    """An OOM kill happened in it since it started (on-failure counts it as a failure)."""
    started_at: float = 0.0
    """Monotonic time its init started (how long it ran decides the back-off)."""
    last_status: int | None = None
    removal: Client = NOBODY
    """Who asked for its forced removal: answered with its init's exit, which ends it for good."""
    cri_log: str = ""
    """The CRI log its init's output also goes to (each life's); empty: none."""

    def describe(self) -> str:
        return self.id

    @property
    def listed(self) -> bool:
        return self.phase in LISTED

    @property
    def shown(self) -> bool:
        """Seen by clients: listed, or kept by its restart policy (a restart's start included)."""
        return self.phase in SHOWN or (self.restarts > 0 and self.phase in (ContainerPhase.STARTING,
                                                                            ContainerPhase.PARKED))

    @property
    def status(self) -> str:
        """What clients see: a pause or resume under way shows the status before it, a restart's
        start shows `restarting`."""
        if self.restarts > 0 and self.phase in (ContainerPhase.STARTING, ContainerPhase.PARKED):
            return ContainerPhase.RESTARTING.value
        return PUBLISHED_STATUS.get(self.phase) or str(self.phase.value)

    def to_json(self) -> dict[str, Any]:
        shown = sorted((p for p in self.processes.values() if p.phase is not ProcessPhase.STARTING),
                       key=lambda p: (p.name != "init", p.name))
        data = {"id": self.id, "bundle": self.bundle, "status": self.status,
                "labels": self.labels, "init": self.init, "processes": [p.to_json() for p in shown]}
        if self.cri_log:
            data["cri_log"] = self.cri_log
        if self.restart.keeps_definition:
            data["restart"] = {"policy": str(self.restart), "count": self.restarts, "next_attempt": self.next_attempt,
                               "last_status": self.last_status}
        return data

    def definition(self) -> ContainerDefinition:
        definition = ContainerDefinition(id=self.id, bundle=self.bundle, labels=self.labels, init=self.init,
                                         restart=str(self.restart), restarts=self.restarts, streak=self.streak,
                                         next_attempt=self.next_attempt,
                                         stopped=self.phase is ContainerPhase.STOPPED, last_status=self.last_status)
        if self.cri_log:
            definition["cri_log"] = self.cri_log
        return definition

    def successor(self) -> Container:
        """A new record for the same container, for its next life under its restart policy."""
        return Container(id=self.id, bundle=self.bundle, labels=self.labels, init_token="", init=self.init,
                         restart=self.restart, restarts=self.restarts, streak=self.streak,
                         stop_requested=self.stop_requested, oom=self.oom, started_at=self.started_at,
                         cri_log=self.cri_log)
