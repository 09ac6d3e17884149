"""What directory trees take on disk, counted as `du -sx` counts: allocated blocks (st_blocks *
512, so sparse and small files count what they really hold), every inode once however many
hard links or trees reach it, and nothing below a mount point (a container's rootfs overlay, a
bind mount of the same file system) or on another file system.

The image bench (images.py) compares two runtimes' roots with it: a shared image layer counts
once, as it takes disk once, and a running container's merged overlay view, which holds
nothing of its own, counts nothing.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["disk_bytes", "mount_points"]

BLOCK = 512
"""The unit of st_blocks, whatever the file system's block size."""
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
"""How mountinfo writes a space, tab, newline or backslash in a path: `\\040`."""


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str]:
    """Every mount point of this mount namespace (octal escapes such as `\\040` decoded)."""
    points = set()
    for line in mountinfo.read_text().splitlines():
        points.add(OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), line.split()[4]))
    return points


def disk_bytes(tops: Iterable[Path], *, exclude: Iterable[Path] = (), mounts: set[str] | None = None) -> int:
    """Bytes allocated to the trees `tops` (each top included; a top that does not exist is 0),
    less the subtrees `exclude`. An inode reached twice (hard links, a tree inside another) counts
    once; a directory that is a mount point (`mounts`, default: this namespace's) or on another
    device than its top is skipped whole, as `du -x` skips it."""
    mounts = mount_points() if mounts is None else mounts
    excluded = {os.path.abspath(path) for path in exclude}
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in tops:
        top_path = os.path.abspath(top)
        try:
            device = os.lstat(top_path).st_dev
        except FileNotFoundError:
            continue
        pending = [top_path]
        while pending:
            path = pending.pop()
            if path in excluded:
                continue
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue  # went while we looked
            is_dir = stat.S_ISDIR(info.st_mode)
            if is_dir and (info.st_dev != device or (path != top_path and path in mounts)):
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * BLOCK
            if is_dir:
                try:
                    pending += [entry.path for entry in os.scandir(path)]
                except FileNotFoundError:
                    continue
    return total
