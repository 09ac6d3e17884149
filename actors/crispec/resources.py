"""The container's resources (`LinuxContainerResources`), its OOM score and cgroup path.

As containerd's `WithResources`: a zero field is unset; a memory limit without a swap limit
also caps swap at the limit where the swap controller exists (no swapping by default);
hugepage limits need the hugetlb controller (refused without it, as containerd without
`tolerate_missing_hugetlb_controller`). `unified` is cgroup v2's: refused on a v1 or hybrid
host, where runc would refuse it at start. `oom_score_adj` is kept as given, even negative:
lowering it needs CAP_SYS_RESOURCE, which is runc's to have (this machine lacks it, and the
kernel refuses there). The cgroup path is `<pod's cgroup parent>/<container id>` (cgroupfs;
a systemd slice parent is named as a path too: actord drives runc without --systemd-cgroup).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from cri_api.v1 import api_pb2

from actors.crispec.errors import invalid
from actors.crispec.host import HostFacts

__all__ = ["apply_resources", "cgroups_path"]

CPUSET = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*")
PAGE_SIZE = re.compile(r"[0-9]+(KB|MB|GB|TB|PB)")
FIELD = "linux resources"


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise invalid(f"{FIELD} {name} {value} is negative")
    return value


def apply_resources(spec: dict[str, Any], config: api_pb2.ContainerConfig, host: HostFacts) -> None:
    """Set `linux.resources` cpu, memory, hugepage limits and unified, and the OOM score."""
    if not config.linux.HasField("resources"):
        return
    wanted = config.linux.resources
    resources = spec["linux"]["resources"]
    cpu: dict[str, Any] = {}
    if period := _non_negative(wanted.cpu_period, "cpu_period"):
        cpu["period"] = period
    if wanted.cpu_quota:
        cpu["quota"] = wanted.cpu_quota
    if shares := _non_negative(wanted.cpu_shares, "cpu_shares"):
        cpu["shares"] = shares
    for name, key in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        value = getattr(wanted, name)
        if value:
            if not CPUSET.fullmatch(value):
                raise invalid(f"{FIELD} {name} {value!r} is not a list of numbers and ranges (0-3,5)")
            cpu[key] = value
    if cpu:
        resources["cpu"] = cpu
    memory: dict[str, Any] = {}
    if limit := _non_negative(wanted.memory_limit_in_bytes, "memory_limit_in_bytes"):
        memory["limit"] = limit
        if host.swap_controller and not wanted.memory_swap_limit_in_bytes:
            memory["swap"] = limit
    if swap := wanted.memory_swap_limit_in_bytes:
        memory["swap"] = swap
    if memory:
        resources["memory"] = memory
    if list(wanted.hugepage_limits):
        if not host.hugetlb:
            raise invalid(f"{FIELD} hugepage_limits: the hugetlb cgroup controller is missing on this host")
        for limit_of in wanted.hugepage_limits:
            if not PAGE_SIZE.fullmatch(limit_of.page_size):
                raise invalid(f"{FIELD} hugepage_limits page_size {limit_of.page_size!r} is not a size like 2MB")
        resources["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in wanted.hugepage_limits]
    if wanted.unified:
        if not host.cgroup_unified:
            raise invalid(f"{FIELD} unified {sorted(wanted.unified)}: cgroup v2 settings, but this host's "
                          f"cgroups are v1 (hybrid)")
        resources["unified"] = dict(wanted.unified)
    if not -1000 <= wanted.oom_score_adj <= 1000:
        raise invalid(f"{FIELD} oom_score_adj {wanted.oom_score_adj} is out of range (-1000 to 1000)")
    spec["process"]["oomScoreAdj"] = wanted.oom_score_adj


def cgroups_path(cgroup_parent: str, container_id: str) -> str | None:
    """The spec's `linux.cgroupsPath` (None without a parent: the runtime's default)."""
    if not cgroup_parent:
        return None
    if not cgroup_parent.startswith("/"):
        cgroup_parent = "/" + cgroup_parent
    return posixpath.join(posixpath.normpath(cgroup_parent), container_id)
