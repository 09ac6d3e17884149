"""The shims' cgroup: outside the daemon's own, in the hierarchies that track a service.

systemd knows a service's processes by its cgroup, in the cgroup v1 `name=systemd`
hierarchy and in the v2 (unified) one. Stopping the service without `KillMode=process`
kills whatever is left in that cgroup, sub-cgroups included: shims forked there would die
with the daemon, and the next daemon would report every container as killed. So each new
shim is moved (one write per hierarchy, by its short-lived helper, before the runtime runs;
`hostos.cgroupprocs`) into the shims' cgroup, by default `actord-shims` beside the daemon's
own. runc makes a container's cgroup relative to its caller's, the shim's (v1: below it; v2
and the hybrid unified hierarchy: beside it), so the containers are outside the daemon's
cgroup too.

The controllers' v1 hierarchies (memory, cpu, ...) are left alone: they limit and account,
and systemd does not stop a service by them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from actors.cgroups import cgroup_places

__all__ = ["DEFAULT_SHIM_CGROUP", "ShimCgroupError", "prepare", "remove_if_empty", "shim_cgroup_dir",
           "shim_cgroup_dirs"]

DEFAULT_SHIM_CGROUP = "actord-shims"
TRACKING_HIERARCHIES = ("name=systemd", "unified")
"""The hierarchies a service manager finds a service's processes in."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,127}\Z", re.ASCII)


class ShimCgroupError(ValueError):
    """A --shim-cgroup that cannot be used; the message names it."""


def shim_cgroup_dir(option: str, mount: Path, own: Path) -> Path:
    """The shims' cgroup dir in one hierarchy, given its mount point and the daemon's cgroup dir."""
    if option.startswith("/"):
        parts = [part for part in option.split("/") if part]
        if any(not _NAME.match(part) for part in parts):
            raise ShimCgroupError(f"--shim-cgroup {option!r}: each part of the path must be a plain name "
                                  "(letters, digits, _ . @ : -)")
        return mount.joinpath(*parts)
    if not _NAME.match(option):
        raise ShimCgroupError(f"--shim-cgroup {option!r}: give a name (letters, digits, _ . @ : -), an absolute "
                              "cgroup path such as /actord-shims, or none")
    # at the root of what we can see (a cgroup namespace), there is no beside: below it is
    return (own if own == mount else own.parent) / option


def shim_cgroup_dirs(option: str, pid: int) -> list[Path]:
    """The shims' cgroup dir in each tracking hierarchy the daemon (`pid`) is in; none for "none".

    `option` is a NAME (a sibling of the daemon's cgroup) or an absolute path from the
    hierarchy's root. A cgroup inside the daemon's own is refused: it would be stopped with it.
    """
    if option == "none":
        return []
    places = cgroup_places(pid)
    dirs = []
    for hierarchy in TRACKING_HIERARCHIES:
        if hierarchy not in places:
            continue
        mount, own = places[hierarchy]
        if own != mount and mount not in own.parents:
            raise ShimCgroupError(f"actord's {hierarchy} cgroup {own} is not below the hierarchy's mount {mount}; "
                                  "give --shim-cgroup none")
        target = shim_cgroup_dir(option, mount, own)
        if own != mount and (target == own or own in target.parents):
            raise ShimCgroupError(f"--shim-cgroup {option!r} is {target}, inside actord's own cgroup {own}: "
                                  "the shims would be stopped with the daemon")
        dirs.append(target)
    return dirs


def prepare(dirs: Sequence[Path]) -> None:
    """Make the shims' cgroups (they may exist already: they are shared, and outlive us)."""
    for directory in dirs:
        directory.mkdir(parents=True, exist_ok=True)


def remove_if_empty(dirs: Sequence[Path]) -> None:
    """Remove the shims' cgroups that no process and no container cgroup uses any more (the
    kernel refuses any other: a shim starting elsewhere meanwhile makes its cgroup again)."""
    for directory in dirs:
        try:
            directory.rmdir()
        except OSError:
            pass
