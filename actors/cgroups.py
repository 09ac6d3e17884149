"""Finding a process's cgroups (v1 and v2), reading their statistics, watching for OOM.

The memory cgroup of a container is found from `/proc/<pid>/cgroup` and the
mount table (`/proc/self/mountinfo`), never assumed: hosts nest cgroups.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostos.libc import LIBC

__all__ = [
    "CgroupUsage",
    "CgroupWatch",
    "cgroup_dirs",
    "cgroup_places",
    "oom_count_file",
    "oom_kills",
    "oom_watch_members",
    "read_stats",
    "read_usage",
    "register_oom_watch",
    "remove_leftover_cgroups",
]

IN_MODIFY = 0x2
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
UNLIMITED_V1 = 1 << 62
"""cgroup v1 shows "no memory limit" as a huge number (the page counter's maximum, in bytes)."""


def _mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller -> (mount point, root in hierarchy); the v2 (mount point, root)."""
    v1: dict[str, tuple[str, str]] = {}
    v2 = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mount_point, fstype = fields[3], fields[4], tail[0]
        if fstype == "cgroup":
            for option in tail[2].split(","):
                v1.setdefault(option, (mount_point, root))
        elif fstype == "cgroup2" and v2 is None:
            v2 = (mount_point, root)
    return v1, v2


def _join(mount: tuple[str, str], path: str) -> Path:
    mount_point, root = mount
    relative = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    return Path(mount_point) / ("" if relative == "." else relative)


def cgroup_places(pid: int) -> dict[str, tuple[Path, Path]]:
    """Controller name (a v1 named hierarchy as "name=systemd", the v2 one as "unified") ->
    (the hierarchy's mount point, the directory of `pid`'s cgroup in it)."""
    v1, v2 = _mounts()
    found: dict[str, tuple[Path, Path]] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and v2 is not None:
            found["unified"] = (Path(v2[0]), _join(v2, path))
            continue
        for controller in controllers.split(","):
            if controller in v1:
                found[controller] = (Path(v1[controller][0]), _join(v1[controller], path))
    return found


def remove_leftover_cgroups(container_id: str, parents: set[Path]) -> list[Path]:
    """Remove the cgroups runc made for a container whose create it never finished (killed at
    its deadline, `runc delete` then finds no container): `<parent>/<id>` for each of `parents`
    (where runc puts a container's cgroup: relative to its own). Only empty ones go; the
    removed are returned."""
    removed = []
    for parent in parents:
        leftover = parent / container_id
        try:
            leftover.rmdir()
        except OSError:
            continue  # not there (runc deleted it), or still in use
        removed.append(leftover)
    return removed


def cgroup_dirs(pid: int) -> dict[str, Path]:
    """Controller name (and "unified") -> the directory of `pid`'s cgroup."""
    return {name: directory for name, (_, directory) in cgroup_places(pid).items()}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    return None if text == "max" else int(text)


def _flat(path: Path) -> dict[str, int]:
    values = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            values[key] = int(value)
    return values


class CgroupWatch:
    """An OOM watch: the fd to poll and how to read the OOM-kill count behind it."""

    def __init__(self, fd: int, kind: str, directory: Path) -> None:
        self.fd, self.kind, self.directory = fd, kind, directory


def oom_watch_members(watch: CgroupWatch | None) -> dict[str, Any]:
    """The OOM members of a `watch_process` message (an fd of -1: no watch), with the count of
    OOM kills already done, read now: the Monitor may see the message only after the next one."""
    if watch is None:
        return {"oom_fd": -1, "oom_kind": None, "cgroup": None}
    return {"oom_fd": watch.fd, "oom_kind": watch.kind, "cgroup": str(watch.directory),
            "oom_kills": oom_kills(watch.kind, watch.directory) or 0}


def oom_count_file(kind: str, directory: Path) -> Path:
    """The file of a memory cgroup ("v1" or "v2") whose `oom_kill` line counts its OOM kills."""
    return directory / ("memory.oom_control" if kind == "v1" else "memory.events")


def oom_kills(kind: str, directory: Path) -> int | None:
    """The cgroup's OOM-kill count; None once the cgroup is gone."""
    name = oom_count_file(kind, directory).name
    if not (directory / name).exists():
        return None
    return _flat(directory / name).get("oom_kill", 0)


def register_oom_watch(pid: int) -> CgroupWatch | None:
    """Watch `pid`'s memory cgroup for OOM kills.

    cgroup v1: a non-blocking eventfd registered against memory.oom_control;
    cgroup v2: inotify on memory.events. None if the process has no memory cgroup.
    """
    dirs = cgroup_dirs(pid)
    if "memory" in dirs:
        directory = dirs["memory"]
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        control = os.open(directory / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        try:
            (directory / "cgroup.event_control").write_text(f"{efd} {control}")
        except OSError:
            os.close(efd)
            return None
        finally:
            os.close(control)
        return CgroupWatch(efd, "v1", directory)
    unified = dirs.get("unified")
    if unified is None or not (unified / "memory.events").exists():
        return None
    fd = LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        return None
    if LIBC.inotify_add_watch(fd, str(unified / "memory.events").encode(), IN_MODIFY) < 0:
        os.close(fd)
        return None
    return CgroupWatch(fd, "v2", unified)


def drain(fd: int) -> bool:
    """Consume what made a watch fd readable (an eventfd count or inotify records); whether
    there was anything."""
    found = False
    try:
        while os.read(fd, 4096):
            found = True
    except OSError:
        pass
    return found


def read_stats(pid: int) -> dict[str, Any]:
    """Memory, CPU, pids and block IO of `pid`'s cgroups (v1 where mounted, else v2)."""
    dirs = cgroup_dirs(pid)
    unified = dirs.get("unified")
    stats: dict[str, Any] = {"timestamp": time.time()}
    if "memory" in dirs:
        memory = dirs["memory"]
        detail = _flat(memory / "memory.stat")
        stats["memory"] = {
            "usage": _int(memory / "memory.usage_in_bytes"),
            "max_usage": _int(memory / "memory.max_usage_in_bytes"),
            "limit": _int(memory / "memory.limit_in_bytes"),
            "cache": detail.get("total_cache", detail.get("cache")),
            "rss": detail.get("total_rss", detail.get("rss")),
            "inactive_file": detail.get("total_inactive_file", detail.get("inactive_file")),
        }
    elif unified is not None:
        detail = _flat(unified / "memory.stat")
        stats["memory"] = {
            "usage": _int(unified / "memory.current"),
            "max_usage": _int(unified / "memory.peak"),
            "limit": _int(unified / "memory.max"),
            "cache": detail.get("file"),
            "rss": detail.get("anon"),
            "inactive_file": detail.get("inactive_file"),
        }
    if "cpuacct" in dirs:
        cpuacct = dirs["cpuacct"]
        per_cpu = (_read(cpuacct / "cpuacct.usage_percpu") or "").split()
        throttled = _flat(dirs.get("cpu", cpuacct) / "cpu.stat").get("nr_throttled")
        stats["cpu"] = {
            "usage_total_ns": _int(cpuacct / "cpuacct.usage"),
            "usage_per_cpu_ns": [int(v) for v in per_cpu],
            "throttled_periods": throttled,
        }
    elif unified is not None:
        detail = _flat(unified / "cpu.stat")
        stats["cpu"] = {
            "usage_total_ns": detail.get("usage_usec", 0) * 1000,
            "usage_per_cpu_ns": [],
            "throttled_periods": detail.get("nr_throttled"),
        }
    pids = dirs.get("pids", unified)
    if pids is not None:
        stats["pids"] = {"current": _int(pids / "pids.current"), "limit": _int(pids / "pids.max")}
    if "blkio" in dirs:
        totals = {"read_bytes": 0, "write_bytes": 0}
        for line in (_read(dirs["blkio"] / "blkio.throttle.io_service_bytes") or "").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("Read", "Write"):
                totals["read_bytes" if parts[1] == "Read" else "write_bytes"] += int(parts[2])
        stats["blkio"] = totals
    elif unified is not None:
        totals = {"read_bytes": 0, "write_bytes": 0}
        for line in (_read(unified / "io.stat") or "").splitlines():
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                if key in ("rbytes", "wbytes"):
                    totals["read_bytes" if key == "rbytes" else "write_bytes"] += int(value)
        stats["blkio"] = totals
    return stats


@dataclass(frozen=True)
class CgroupUsage:
    """The few numbers a metrics scrape takes from a container's cgroups."""

    memory_bytes: int
    memory_limit_bytes: int | None
    """None: no limit."""
    cpu_seconds: float | None
    pids: int | None


def read_usage(dirs: dict[str, Path]) -> CgroupUsage | None:
    """Memory usage and limit, CPU time and pids from `cgroup_dirs`' directories (v1 where
    mounted, else v2); None once the memory cgroup is gone (the container has exited)."""
    unified = dirs.get("unified")
    if "memory" in dirs:
        memory, limit = _int(dirs["memory"] / "memory.usage_in_bytes"), _int(dirs["memory"] / "memory.limit_in_bytes")
        if limit is not None and limit >= UNLIMITED_V1:
            limit = None
    elif unified is not None:
        memory, limit = _int(unified / "memory.current"), _int(unified / "memory.max")
    else:
        return None
    if memory is None:
        return None
    cpu_seconds = None
    if "cpuacct" in dirs:
        nanoseconds = _int(dirs["cpuacct"] / "cpuacct.usage")
        cpu_seconds = None if nanoseconds is None else nanoseconds / 1e9
    elif unified is not None:
        microseconds = _flat(unified / "cpu.stat").get("usage_usec")
        cpu_seconds = None if microseconds is None else microseconds / 1e6
    pids_dir = dirs.get("pids", unified)
    pids = None if pids_dir is None else _int(pids_dir / "pids.current")
    return CgroupUsage(memory_bytes=memory, memory_limit_bytes=limit, cpu_seconds=cpu_seconds, pids=pids)
