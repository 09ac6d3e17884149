"""What the daemon answers, as typed, frozen objects; each keeps the map it was made from in `raw`.

The fields are the protocol's (docs/protocol.md), renamed only where the wire name misleads:
a process's name in its container is `pid` on the wire and `name` here; its host pid is
`system_pid` in both. Members the daemon adds later show in `raw` before they get a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Checkpoint", "Container", "Event", "ExitResult", "Health", "LogRecord", "Process", "RestartState",
           "Stats", "Version"]

STDOUT, STDERR = 1, 2


@dataclass(frozen=True)
class Process:
    """A process of a container: its init (`name == "init"`) or an exec'd one."""

    name: str
    """Its name in the container (`init`, `exec-1`, or the one given); `pid` on the wire."""
    system_pid: int | None
    """Its pid on the host."""
    shim_pid: int | None
    args: tuple[str, ...]
    tty: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Process:
        return cls(name=data["pid"], system_pid=data.get("system_pid"), shim_pid=data.get("shim_pid"),
                   args=tuple(data.get("args") or ()), tty=bool(data.get("tty")), raw=data)


@dataclass(frozen=True)
class RestartState:
    """Where a container's restart policy stands."""

    policy: str
    """`on-failure[:MAX]`, `always` or `unless-stopped`."""
    count: int
    """Restarts so far."""
    next_attempt: float | None
    """Unix time of the next restart, while restarting."""
    last_status: int | None
    """The status of the last exit."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RestartState:
        return cls(policy=data["policy"], count=data["count"], next_attempt=data.get("next_attempt"),
                   last_status=data.get("last_status"))


@dataclass(frozen=True)
class Container:
    """A container as `containers.state` and `containers.list` show it."""

    id: str
    status: str
    """`starting`, `running`, `paused`, `stopping`, `restarting` or `stopped`."""
    bundle: str
    labels: Mapping[str, str]
    init: bool
    """Started with an init (tini) as PID 1."""
    processes: tuple[Process, ...]
    """The init first, then the exec'd processes by name."""
    restart: RestartState | None
    """Its restart policy's state, if it has one."""
    cri_log: str | None = None
    """The CRI log its init's output also goes to (the kubelet's format), if it was given one."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Container:
        restart = data.get("restart")
        return cls(id=data["id"], status=data["status"], bundle=data["bundle"], labels=dict(data.get("labels") or {}),
                   init=bool(data.get("init")), processes=tuple(Process.from_wire(p) for p in data["processes"]),
                   restart=None if restart is None else RestartState.from_wire(restart), cri_log=data.get("cri_log"),
                   raw=data)

    def process(self, name: str = "init") -> Process | None:
        """The process named `name`, if it runs."""
        return next((p for p in self.processes if p.name == name), None)


@dataclass(frozen=True)
class Event:
    """One numbered event (see docs/protocol.md, *Events*)."""

    seq: int
    """Its sequence number: only grows, across daemon restarts and reboots."""
    type: str
    """`start-container`, `start-process`, `exit`, `oom`, `pause`, `resume` or `restart`."""
    container_id: str
    process: str | None
    """The process's name in its container (`init`...), for events about one process."""
    status: int | None
    """Of an `exit`: the exit code, or 128 + the signal; of a `restart`: the exit that caused it."""
    timestamp: float
    boot: str
    """The id of the daemon run that recorded it."""
    attempt: int | None
    """Of a `restart`: which restart this is (1 for the first)."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Event:
        return cls(seq=data["seq"], type=data["type"], container_id=data["id"], process=data.get("pid"),
                   status=data.get("status"), timestamp=data["timestamp"], boot=data["boot"],
                   attempt=data.get("attempt"), raw=data)


@dataclass(frozen=True)
class ExitResult:
    """How a process ended (`Client.wait`)."""

    container_id: str
    process: str
    status: int
    """Its exit code, or 128 + the signal that ended it (137: killed)."""
    event: Event | None
    """The `exit` event that said so; None when the answer is a restart policy's `last_status`
    (the daemon keeps it after the event log has rotated past that exit)."""

    @property
    def signal(self) -> int | None:
        """The signal that ended it, if one did (a status above 128)."""
        return self.status - 128 if 128 < self.status < 255 else None


@dataclass(frozen=True)
class LogRecord:
    """One chunk of a process's captured output."""

    stream: int
    """1: stdout, 2: stderr."""
    timestamp: float
    """Unix time at which its shim captured it."""
    data: bytes

    @property
    def is_stderr(self) -> bool:
        return self.stream == STDERR


@dataclass(frozen=True)
class Stats:
    """A container's cgroup figures; a figure its cgroups do not provide is None."""

    timestamp: float
    memory_usage: int | None
    memory_max_usage: int | None
    memory_limit: int | None
    """Bytes; a huge number (or None) when unlimited."""
    memory_rss: int | None
    memory_cache: int | None
    memory_inactive_file: int | None
    """Page cache not used lately (reclaimable first): usage less it is the working set."""
    cpu_total_ns: int | None
    cpu_throttled_periods: int | None
    """CPU periods in which the container was throttled (its cpu quota used up)."""
    pids_current: int | None
    pids_limit: int | None
    blkio_read_bytes: int | None
    blkio_write_bytes: int | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Stats:
        memory, cpu = data.get("memory") or {}, data.get("cpu") or {}
        pids, blkio = data.get("pids") or {}, data.get("blkio") or {}
        return cls(timestamp=data["timestamp"], memory_usage=memory.get("usage"),
                   memory_max_usage=memory.get("max_usage"), memory_limit=memory.get("limit"),
                   memory_rss=memory.get("rss"), memory_cache=memory.get("cache"),
                   memory_inactive_file=memory.get("inactive_file"),
                   cpu_total_ns=cpu.get("usage_total_ns"), cpu_throttled_periods=cpu.get("throttled_periods"),
                   pids_current=pids.get("current"),
                   pids_limit=pids.get("limit"), blkio_read_bytes=blkio.get("read_bytes"),
                   blkio_write_bytes=blkio.get("write_bytes"), raw=data)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint actord made in `<bundle>/checkpoints/<name>`."""

    name: str
    created: float | None
    exit: bool
    """The container was stopped once checkpointed."""
    tcp: bool
    unix_sockets: bool
    shell: bool
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(name=data["name"], created=data.get("created"), exit=bool(data.get("exit")),
                   tcp=bool(data.get("tcp")), unix_sockets=bool(data.get("unix_sockets")),
                   shell=bool(data.get("shell")), raw=data)


@dataclass(frozen=True)
class Version:
    """The daemon's facts (`version`)."""

    version: str
    protocol: int
    pid: int
    runtime: str
    state_dir: str
    events_address: str
    """Where its event socket is (ipc://<state-dir>/events.sock)."""
    uptime: float | None
    degraded: tuple[str, ...]
    """Why it cannot do all it should; empty when healthy."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Version:
        return cls(version=data["version"], protocol=data["protocol"], pid=data["pid"], runtime=data["runtime"],
                   state_dir=data["state_dir"], events_address=data["events_address"], uptime=data.get("uptime"),
                   degraded=tuple(data.get("degraded") or ()), raw=data)


@dataclass(frozen=True)
class Health:
    """`healthy` or `degraded`, and why (`health`)."""

    status: str
    degraded: tuple[str, ...]
    uptime: float | None
    containers: Mapping[str, int]
    """How many containers by status."""
    version: str | None
    """The daemon's version."""
    pid: int | None
    """The daemon's pid."""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Health:
        return cls(status=data["status"], degraded=tuple(data.get("degraded") or ()), uptime=data.get("uptime"),
                   containers=dict(data.get("containers") or {}), version=data.get("version"), pid=data.get("pid"),
                   raw=data)
