"""A path of an image looked up through its layer dirs as overlayfs will show it, without
mounting anything: the top layer first, a whiteout hiding what is below it, an opaque directory
hiding the lower layers' entries of that directory, a directory of an upper layer hiding a
lower layer's file of that name.

A symlink met on the way is resolved as the container will resolve it, inside the image (an
absolute target from the image's root, `..` never above it); the host's filesystem is never
reached: every directory looked into is one a layer has as a real directory.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from actors.images.errors import ImageError
from actors.images.layerfilter import OPAQUE_XATTR, is_whiteout

__all__ = ["LayerView", "Resolved"]

MAX_SYMLINKS = 40
"""As the kernel's ELOOP limit."""
READ_LIMIT = 16 << 20


@dataclass(frozen=True)
class Resolved:
    """Where a path leads in the image: the components found (symlinks resolved), the host path
    of the last one in its top layer (None for the root), and what is missing after them."""

    found: tuple[str, ...]
    host: Path | None
    missing: tuple[str, ...]


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class LayerView:
    """The merged view of layer dirs (`layers_top_first`), read without a mount."""

    def __init__(self, layers_top_first: list[Path]) -> None:
        self.layers = layers_top_first

    def _child(self, below: list[Path], found: list[str], name: str) -> tuple[Path | None, list[Path]]:
        """Entry `name` of the merged directory `found` (which the layers `below` make up): its
        host path in the top layer that has it, and the layers that make it up if it is a dir."""
        top: Path | None = None
        top_is_dir = False
        makers: list[Path] = []
        for layer in below:
            candidate = layer.joinpath(*found, name)
            try:
                info = os.lstat(candidate)
            except FileNotFoundError:
                continue
            if is_whiteout(info) or (top is not None and not stat.S_ISDIR(info.st_mode)):
                break
            if top is None:
                top, top_is_dir = candidate, stat.S_ISDIR(info.st_mode)
                if not top_is_dir:
                    break
            makers.append(layer)
            if _is_opaque(candidate):
                break
        return top, makers if top_is_dir else []

    def resolve(self, path: str) -> Resolved:
        """Follow `path` (absolute, in the image) through the layers, symlinks included."""
        pending = [part for part in path.split("/") if part not in ("", ".")]
        found: list[str] = []
        hosts: list[Path] = []
        stack: list[list[Path]] = [self.layers]
        hops = 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                if found:
                    found.pop()
                    hosts.pop()
                    stack.pop()
                continue
            entry, makers = self._child(stack[-1], found, name)
            if entry is None:
                return Resolved(tuple(found), hosts[-1] if hosts else None, (name, *pending))
            info = os.lstat(entry)
            if stat.S_ISLNK(info.st_mode):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise ImageError(f"{path} in the image: too many levels of symbolic links")
                target = os.readlink(entry)
                pending = [part for part in target.split("/") if part not in ("", ".")] + pending
                if target.startswith("/"):
                    found, hosts, stack = [], [], [self.layers]
                continue
            found.append(name)
            hosts.append(entry)
            if not stat.S_ISDIR(info.st_mode):
                if pending:
                    raise ImageError(f"{path} in the image: /{'/'.join(found)} is not a directory")
                break
            stack.append(makers)
        return Resolved(tuple(found), hosts[-1] if hosts else None, ())

    def read(self, path: str) -> bytes | None:
        """The content of the regular file `path` of the image; None if the image has none there."""
        resolved = self.resolve(path)
        if resolved.missing or resolved.host is None:
            return None
        try:
            fd = os.open(resolved.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise ImageError(f"{path} in the image: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ImageError(f"{path} in the image is not a regular file")
            data = handle.read(READ_LIMIT + 1)
        if len(data) > READ_LIMIT:
            raise ImageError(f"{path} in the image is larger than {READ_LIMIT >> 20} MiB")
        return data
