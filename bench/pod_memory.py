"""What a runtime runs for its pods, and its PSS, as bench/bench.py measures PSS (smaps_rollup).

A runtime's processes are its roots (actord: the daemon, whose spawner, shims and infra
containers all descend from it; containerd: the daemon and its shims, which re-parent to init)
and every descendant, less the pods' workload (the same `sleep` in every runtime's pods): the
pause or infra processes count, the containers' own program does not."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["attributed", "process_tree", "pss_kib", "runtime_pss_kib"]


def pss_kib(pid: int) -> int:
    """The process's proportional set size in KiB; 0 once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree() -> tuple[dict[int, int], dict[int, list[str]]]:
    """Every process's parent, and its argv."""
    parents, argvs = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
        argvs[int(entry)] = argv[:-1] if argv and argv[-1] == "" else argv
    return parents, argvs


def attributed(roots: Iterable[int], parents: Mapping[int, int], argvs: Mapping[int, list[str]],
               workload: list[str]) -> set[int]:
    """The roots and all their descendants, but the processes whose argv is `workload`
    (and what those start)."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    pending = [pid for pid in roots if pid in parents]
    while pending:
        pid = pending.pop()
        if pid in found or argvs.get(pid) == workload:
            continue
        found.add(pid)
        pending.extend(children.get(pid, []))
    return found


def runtime_pss_kib(roots: Iterable[int], workload: list[str]) -> tuple[int, int]:
    """The PSS of the runtime whose roots these are, in KiB, and how many processes it counts."""
    parents, argvs = process_tree()
    pids = attributed(roots, parents, argvs, workload)
    return sum(pss_kib(pid) for pid in pids), len(pids)
