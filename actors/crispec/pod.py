"""What the pod sandbox has made that its containers join or mount: the pods side (actors/pods)
fills it in when it creates a container."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PodFacts"]


@dataclass(frozen=True)
class PodFacts:
    """A pod sandbox's namespaces, files and cgroup."""

    sandbox_id: str
    infra_pid: int
    """The infra process: its IPC, UTS and PID namespaces are joined as /proc/<pid>/ns/..."""
    netns: Path | None
    """The pod's network namespace (bind-mounted); None: the host's network (hostNetwork)."""
    resolv_conf: Path | None = None
    hostname_file: Path | None = None
    hosts_file: Path | None = None
    shm: Path | None = None
    """The pod's /dev/shm tmpfs, shared by its containers (actors/pods/shm.py); None: the
    container has a private tmpfs (or the host's, with host IPC)."""
    cgroup_parent: str = ""
