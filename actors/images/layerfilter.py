"""What a layer tar may put in its layer directory, as a `tarfile` extraction filter.

It starts from tarfile's own `tar_filter` (leading `/` stripped from names, the realpath of
every target inside the destination) and is stricter where an image's author could reach the
host: no `..` component at all, no member written through a symlinked parent or over a
symlink (tarfile's realpath checks alone were bypassed by later members re-pointing a parent),
and a hard link only to a member already in the layer that is not a symlink (tarfile chowns,
chmods and touches the new link, which would follow it). It keeps what images need and
`tar_filter` strips: setuid/setgid/sticky and group/other-write bits, device nodes and fifos
(images carry /dev entries; the store is root's alone), absolute symlink targets (resolved
inside the container), numeric ownership (the caller extracts with `numeric_owner`: never a
name looked up on the host).

OCI whiteouts become overlayfs's: `.wh.NAME` a 0/0 character device NAME, `.wh..wh..opq` the
xattr `trusted.overlay.opaque=y` on its directory. PAX `SCHILY.xattr.*` headers are kept to be
set once the member is extracted (`finish`), except `trusted.*` (overlayfs reads
`trusted.overlay.*`: not the image's to say); one the kernel will not set (a `security.*`
label it does not know) is skipped.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
from dataclasses import dataclass, field

from actors.images.errors import ImageError

__all__ = ["OPAQUE_XATTR", "LayerFilter", "is_whiteout"]

logger = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
AUFS_META_PREFIX = ".wh..wh."
"""AUFS's own entries (`.wh..wh.plnk`, ...): no whiteout, nothing for overlayfs."""
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_HEADER = "SCHILY.xattr."
REFUSED_XATTRS = "trusted."
SKIPPED_ERRNOS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP)


def is_whiteout(info: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device numbered 0/0."""
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _components(member: tarfile.TarInfo, name: str) -> list[str]:
    """The path components of `name` (a member's name or hard link target, leading `/` gone)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"layer member {member.name!r} has a '..' in {name!r}")
    return parts


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _check_parents(dest: str, parents: list[str], member: tarfile.TarInfo) -> None:
    """Every existing directory on the way to a target is a real directory of the layer; a
    missing one (a layer need not list the parents of its members) is made 0755, as containerd
    makes it: tarfile would make it with the daemon's umask (0700), and as the top layer's
    directory it would hide the lower layers' and lock every other user out of it."""
    path = dest
    for part in parents:
        path = os.path.join(path, part)
        info = _lstat(path)
        if info is None:
            os.mkdir(path)
            os.chmod(path, 0o755)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise ImageError(f"layer member {member.name!r} goes through the symlink {path.removeprefix(dest)!r}")
        if not stat.S_ISDIR(info.st_mode):
            raise ImageError(f"layer member {member.name!r}: {path.removeprefix(dest)!r} is not a directory")


@dataclass
class LayerFilter:
    """One layer's extraction filter; it remembers the opaque dirs and xattrs `finish` sets."""

    opaque_dirs: list[str] = field(default_factory=list)
    xattrs: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)

    def __call__(self, member: tarfile.TarInfo, destination: str | os.PathLike[str]) -> tarfile.TarInfo | None:
        dest = os.fspath(destination)
        checked = tarfile.tar_filter(member, dest)
        parts = _components(member, checked.name)
        _check_parents(dest, parts[:-1], member)
        base = parts[-1] if parts else ""
        if base == OPAQUE_MARKER:
            self.opaque_dirs.append("/".join(parts[:-1]))
            return None
        if base.startswith(AUFS_META_PREFIX):
            return None
        if base.startswith(WHITEOUT_PREFIX):
            return self._whiteout(member, dest, parts[:-1], base.removeprefix(WHITEOUT_PREFIX))
        existing = _lstat(os.path.join(dest, *parts))
        if existing is not None and stat.S_ISLNK(existing.st_mode) and not member.issym():
            raise ImageError(f"layer member {member.name!r} would be written through the symlink there")
        linkname = self._hard_link_target(member, dest) if member.islnk() else member.linkname
        xattrs = {key.removeprefix(XATTR_HEADER): value.encode("utf-8", "surrogateescape")
                  for key, value in member.pax_headers.items() if key.startswith(XATTR_HEADER)}
        if xattrs:
            self.xattrs.append(("/".join(parts), xattrs))
        return checked.replace(name="/".join(parts) or ".", mode=member.mode, linkname=linkname, deep=False)

    @staticmethod
    def _whiteout(member: tarfile.TarInfo, dest: str, parents: list[str], hidden: str) -> tarfile.TarInfo | None:
        """`.wh.NAME` as overlayfs's whiteout of NAME: a 0/0 character device, root's, mode 0."""
        if hidden in ("", ".", ".."):
            raise ImageError(f"layer member {member.name!r} is a whiteout of no name")
        if os.path.lexists(os.path.join(dest, *parents, hidden)):
            return None  # a whiteout hides lower layers only: this layer's own NAME stays
        whiteout = member.replace(name="/".join([*parents, hidden]), mode=0, uid=0, gid=0, uname="", gname="",
                                  linkname="", deep=False)
        whiteout.type, whiteout.devmajor, whiteout.devminor, whiteout.pax_headers = tarfile.CHRTYPE, 0, 0, {}
        return whiteout

    @staticmethod
    def _hard_link_target(member: tarfile.TarInfo, dest: str) -> str:
        """A hard link's target, relative to the layer: an earlier member, not a symlink or dir."""
        parts = _components(member, member.linkname)
        if not parts:
            raise ImageError(f"layer member {member.name!r} is a hard link to nothing")
        _check_parents(dest, parts[:-1], member)
        target = _lstat(os.path.join(dest, *parts))
        if target is None:
            raise ImageError(f"layer member {member.name!r} is a hard link to {member.linkname!r}, "
                             f"which is not an earlier member of the layer")
        if stat.S_ISLNK(target.st_mode) or stat.S_ISDIR(target.st_mode):
            raise ImageError(f"layer member {member.name!r} is a hard link to {member.linkname!r}, "
                             f"which is a {'symlink' if stat.S_ISLNK(target.st_mode) else 'directory'}")
        return "/".join(parts)

    def finish(self, dest: str) -> None:
        """After extraction: opaque directories marked, members' xattrs set (never through a symlink)."""
        for directory in self.opaque_dirs:
            path = dest
            for part in directory.split("/") if directory else []:  # a marker may come without its directory
                path = os.path.join(path, part)
                info = _lstat(path)
                if info is None:
                    os.mkdir(path, 0o755)
                elif not stat.S_ISDIR(info.st_mode):  # a symlink too: never followed
                    raise ImageError(f"layer member {directory}/{OPAQUE_MARKER} marks {directory!r} opaque, "
                                     f"but {path.removeprefix(dest)!r} is not a directory")
            os.setxattr(path, OPAQUE_XATTR, b"y", follow_symlinks=False)
        for name, xattrs in self.xattrs:
            path = os.path.join(dest, name)
            for key, value in xattrs.items():
                if key.startswith(REFUSED_XATTRS):
                    logger.info("layer member %r: xattr %s not set (trusted.* is not an image's)", name, key)
                    continue
                try:
                    os.setxattr(path, key, value, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in SKIPPED_ERRNOS:
                        raise ImageError(f"layer member {name!r}: cannot set its xattr {key}: {exc.strerror}") from None
                    logger.info("layer member %r: xattr %s not set: %s", name, key, exc.strerror)
