"""Container and process records, owned by the Supervisor alone."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Container", "Process"]


@dataclass
class Process:
    id: str
    token: str
    system_pid: int
    shim_pid: int
    args: list[str]
    pidfd: int
    tty: bool = False
    system_start: int | None = None
    """Start time of the container process, to tell it from a later process with the same pid."""

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.id,
            "system_pid": self.system_pid,
            "shim_pid": self.shim_pid,
            "args": self.args,
            "tty": self.tty,
        }


@dataclass
class Container:
    """One container. `status`: starting -> running <-> paused -> stopping -> (removed)."""

    id: str
    bundle: str
    labels: dict[str, str]
    init_token: str
    init: bool = False
    """Started with `--init`: tini is PID 1 and the bundle's process its child."""
    status: str = "starting"
    processes: dict[str, Process] = field(default_factory=dict)
    start_route: bytes | None = None
    start_request_id: str | None = None
    init_status: int | None = None
    starting: set[str] = field(default_factory=set)
    """Names of processes whose exec is under way (reserved)."""
    exec_count: int = 0
    transition: str | None = None
    """"pause" or "resume" while one is under way."""

    @property
    def listed(self) -> bool:
        return self.status in ("running", "paused")

    def to_json(self) -> dict[str, Any]:
        processes = sorted(self.processes.values(), key=lambda p: (p.id != "init", p.id))
        return {
            "id": self.id,
            "bundle": self.bundle,
            "status": self.status,
            "labels": self.labels,
            "init": self.init,
            "processes": [p.to_json() for p in processes],
        }
