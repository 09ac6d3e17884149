"""What the host offers that the spec depends on, probed once and passed in, so every rule is
a function of its inputs (and the unit tests hand in any host they like)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from actors.crispec.capabilities import CAPABILITIES

__all__ = ["HostFacts"]

CGROUP2_CONTROLLERS = Path("/sys/fs/cgroup/cgroup.controllers")
"""Present only where /sys/fs/cgroup is the unified (v2) hierarchy."""


@dataclass(frozen=True)
class HostFacts:
    """The host's security modules, cgroup layout, capabilities and mounts."""

    apparmor: bool
    selinux: bool
    cgroup_unified: bool
    hugetlb: bool
    swap_controller: bool
    capabilities: frozenset[str]
    """The capability names actord's bounding set holds: what "ALL" and privileged give."""
    mountinfo: Path = Path("/proc/self/mountinfo")
    devices: Path = Path("/dev")
    """Where a privileged container's host devices are listed from."""

    @classmethod
    def probe(cls) -> HostFacts:
        """This host, as containerd probes it."""
        unified = CGROUP2_CONTROLLERS.exists()
        if unified:
            hugetlb = "hugetlb" in CGROUP2_CONTROLLERS.read_text().split()
            swap = False
        else:
            hugetlb = os.path.isdir("/sys/fs/cgroup/hugetlb")
            swap = os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
        return cls(apparmor=os.path.isdir("/sys/kernel/security/apparmor"), selinux=os.path.isdir("/sys/fs/selinux"),
                   cgroup_unified=unified, hugetlb=hugetlb, swap_controller=swap,
                   capabilities=bounding_set(Path("/proc/self/status").read_text()))


def bounding_set(status: str) -> frozenset[str]:
    """The names of the capabilities in `CapBnd` of a /proc/PID/status text."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return frozenset(name for bit, name in enumerate(CAPABILITIES) if mask & (1 << bit))
    return frozenset()
