"""What the image store takes on its filesystem, for the CRI's ImageFsInfo (the kubelet's image
garbage collection and eviction read it).

The bytes (allocated blocks, as `du`) and inodes of everything under the images dir: the OCI
layout, the unpacked layers, the containers' upper dirs. Each inode is counted once (the
layout's blobs are hard-linked while a pull stages them), and the walk never enters another
filesystem: a container's root overlay is mounted below, and what it shows is counted where
it lives.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["StoreUsage", "store_usage"]

BLOCK = 512
"""st_blocks is in 512-byte units."""


@dataclass(frozen=True)
class StoreUsage:
    used_bytes: int
    inodes_used: int


def store_usage(directory: Path) -> StoreUsage:
    """Bytes and inodes under `directory` (itself included), on its filesystem only; entries
    that vanish during the walk are skipped."""
    try:
        top = os.lstat(directory)
    except FileNotFoundError:
        return StoreUsage(0, 0)
    linked: set[int] = set()
    """Inodes of more than one link seen so far (no other needs remembering)."""
    used, inodes = top.st_blocks * BLOCK, 1
    pending = [os.fspath(directory)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if info.st_dev != top.st_dev:
                continue  # a mount point
            if info.st_nlink > 1 and not stat.S_ISDIR(info.st_mode):
                if info.st_ino in linked:
                    continue
                linked.add(info.st_ino)
            used += info.st_blocks * BLOCK
            inodes += 1
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
    return StoreUsage(used, inodes)
