"""What an image archive may hold, checked before any tool unpacks it.

skopeo untars an OCI layout tarball and follows what it meets: a member `lnk -> /etc` and then
a member `lnk/shadow` wrote a host file as root. So an archive is accepted only if every member
is a regular file or a directory with a name such an archive has, each name once:

    OCI layout tarball   oci-layout, index.json, blobs/, blobs/<alg>/, blobs/<alg>/<hex digest>
                         (and manifest.json, repositories: docker save writes an OCI layout since 25)
    docker save archive  manifest.json, repositories, <hex>.json, <hex>/ holding layer.tar, json and
                         VERSION; blobs/sha256/<hex> (with oci-layout and index.json: docker 25)

Anything else (a symlink or hard link, a device, a FIFO, an absolute or `..` name, any other
name, a name twice) refuses the whole archive, with the member named. A `./` before each name
(`tar -C DIR .`) is allowed. The reading here is tarfile's: it only reads, it never extracts.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterable
from typing import IO

from actors.images.errors import ImageError

__all__ = ["INDEX_LIMIT", "archive_kind", "check_members", "member_problem", "read_archive"]

INDEX_LIMIT = 16 << 20
"""The most of an archive's index.json or manifest.json read: a bound on what an import parses."""

_HEX = "[0-9a-f]{64}"
_BLOB = rf"blobs/(?:sha256/{_HEX}|sha512/[0-9a-f]{{128}})"
FILES = {
    "oci": re.compile(rf"oci-layout|index\.json|{_BLOB}|manifest\.json|repositories"),
    "docker": re.compile(rf"manifest\.json|repositories|{_HEX}\.json|{_HEX}/(?:layer\.tar|json|VERSION)"
                         rf"|blobs/sha256/{_HEX}|oci-layout|index\.json"),
}
"""The regular files each kind of archive has."""
DIRECTORIES = {
    "oci": re.compile(r"\.|blobs|blobs/(?:sha256|sha512)"),
    "docker": re.compile(rf"\.|{_HEX}|blobs|blobs/sha256"),
}
"""The directories each kind of archive has (`.`: the top, as `tar -C DIR .` writes it)."""
DESCRIPTION = {
    "oci": "an OCI layout tarball (oci-layout, index.json, blobs/<alg>/<digest>)",
    "docker": "a docker save archive (manifest.json, repositories, <id>.json, <id>/layer.tar, json, VERSION)",
}
KINDS_OF_MEMBER = {
    tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO", tarfile.CONTTYPE: "a contiguous file",
    tarfile.GNUTYPE_SPARSE: "a sparse file",
}
REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)


def _plain_name(name: str) -> str:
    """A member's name without the `./` that `tar -C DIR .` puts before each."""
    return name.removeprefix("./") if name != "./" else "."


def archive_kind(member_names: Iterable[str]) -> str | None:
    """"oci" for an OCI layout tarball, "docker" for a `docker save` archive, else None."""
    names = {_plain_name(name) for name in member_names}
    if {"oci-layout", "index.json"} <= names:
        return "oci"
    if "manifest.json" in names:
        return "docker"
    return None


def member_problem(member: tarfile.TarInfo, kind: str) -> str | None:
    """Why `member` cannot be in an archive of `kind`, or None if it can."""
    if member.type not in (*REGULAR, tarfile.DIRTYPE):
        what = KINDS_OF_MEMBER.get(member.type, f"an entry of tar type {member.type!r}")
        target = f" (to {member.linkname!r})" if member.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
        return f"is {what}{target}: an image archive holds only regular files and directories"
    if member.name.startswith("/"):
        return "has an absolute name"
    if ".." in member.name.split("/"):
        return "has a '..' in its name"
    name = _plain_name(member.name)
    names = DIRECTORIES if member.type == tarfile.DIRTYPE else FILES
    if not names[kind].fullmatch(name):
        return f"is not a {'directory' if member.type == tarfile.DIRTYPE else 'file'} of {DESCRIPTION[kind]}"
    return None


def check_members(members: Iterable[tarfile.TarInfo], kind: str) -> None:
    """Refuse (ImageError naming the member) the first member an archive of `kind` cannot hold."""
    seen: set[str] = set()
    for member in members:
        problem = member_problem(member, kind)
        name = _plain_name(member.name)
        if problem is None and name in seen:
            problem = "appears twice"
        if problem is not None:
            raise ImageError(f"member {member.name!r} {problem}")
        seen.add(name)


def read_archive(archive: IO[bytes], shown: str) -> tuple[str, object]:
    """The kind of the archive read from `archive` and its index.json or manifest.json, once every
    member is checked; ImageError (naming the archive as `shown`) if it is not an image archive
    or holds a member it must not."""
    try:
        with tarfile.open(fileobj=archive, mode="r:*") as tar:
            members = tar.getmembers()
            kind = archive_kind(member.name for member in members)
            if kind is None:
                raise ImageError(f"{shown} is neither an OCI layout tarball (oci-layout, index.json) "
                                 f"nor a docker save archive (manifest.json)")
            try:
                check_members(members, kind)
            except ImageError as exc:
                raise ImageError(f"{shown}: {exc}") from None
            listing = "index.json" if kind == "oci" else "manifest.json"
            member = next(m for m in members if _plain_name(m.name) == listing)
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None or member.size > INDEX_LIMIT:
                raise ImageError(f"{shown}: {member.name} is not a regular file of at most {INDEX_LIMIT} bytes")
            data = handle.read()
    except (tarfile.TarError, EOFError):
        raise ImageError(f"{shown} is neither an OCI layout tarball nor a docker save archive "
                         f"(not a tar archive)") from None
    except OSError as exc:
        raise ImageError(f"cannot read {shown}: {exc.strerror}") from None
    try:
        return kind, json.loads(data)
    except ValueError:
        raise ImageError(f"{shown}: {member.name} is not JSON") from None
