"""Who a container of an image runs as: the image config's User resolved as docker (and runc's
libcontainer/user `GetExecUser`, which docker uses) resolves it, in the image's own
/etc/passwd and /etc/group, never the host's.

`User` is `user[:group]`, each a name or a number. A user (default: uid 0) found in passwd
gives its uid, primary gid and home; a number not found stands for itself (gid 0); a name not
found is an error. An explicit group replaces the gid (a name must be in /etc/group); without
one, the groups of /etc/group that list the user's name are its supplementary groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from actors.images.errors import ImageError

__all__ = ["ImageUser", "UnknownName", "resolve_user"]

MAX_ID = 2**31 - 1
NUMBER = re.compile(r"[0-9]+")


class UnknownName(ImageError):
    """A user or group name the image's /etc/passwd or /etc/group does not hold (the CRI
    answers NOT_FOUND for it, bad input INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class ImageUser:
    """The process's user of a runtime spec, and the home its environment gets."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str | None = None
    """From passwd; None when the user has no entry there."""


@dataclass(frozen=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _lines(text: bytes | None) -> list[list[str]]:
    """The colon-separated fields of each line that is not empty or a comment."""
    if text is None:
        return []
    decoded = text.decode("utf-8", "surrogateescape")
    return [line.split(":") for line in (raw.strip() for raw in decoded.split("\n")) if line and line[0] != "#"]


def _passwd_entries(text: bytes | None) -> list[_PasswdEntry]:
    """Entries with numeric uid and gid (a malformed line is skipped, never read as uid 0)."""
    return [_PasswdEntry(fields[0], int(fields[2]), int(fields[3]), fields[5] if len(fields) > 5 else "")
            for fields in _lines(text) if len(fields) >= 4 and NUMBER.fullmatch(fields[2])
            and NUMBER.fullmatch(fields[3])]


def _group_entries(text: bytes | None) -> list[_GroupEntry]:
    return [_GroupEntry(fields[0], int(fields[2]),
                        tuple(m for m in (fields[3].split(",") if len(fields) > 3 else []) if m))
            for fields in _lines(text) if len(fields) >= 3 and NUMBER.fullmatch(fields[2])]


def _in_range(value: int, what: str, spec: str, source: str) -> int:
    if value > MAX_ID:
        raise ImageError(f"{source} {spec!r}: {what} {value} is out of range (0 to {MAX_ID})")
    return value


def resolve_user(spec: str, passwd: bytes | None, group: bytes | None, *,
                 source: str = "the image's User") -> ImageUser:
    """The user `spec` (the image config's User) stands for, given the image's /etc/passwd and
    /etc/group contents (None: the image has no such file). `source` names where `spec` came
    from in an error (the CRI's security context resolves its users here too)."""
    user_arg, _, rest = spec.partition(":")
    group_arg = rest.split(":", 1)[0]
    numeric_user = NUMBER.fullmatch(user_arg) is not None
    entries = _passwd_entries(passwd)
    if not user_arg:
        matches = [e for e in entries if e.uid == 0]
    elif numeric_user:
        matches = [e for e in entries if e.uid == int(user_arg)]
    else:
        matches = [e for e in entries if e.name == user_arg]
    uid, gid, home, name = 0, 0, None, None
    if matches:
        uid, gid, home, name = matches[0].uid, matches[0].gid, matches[0].home, matches[0].name
    elif user_arg:
        if not numeric_user:
            raise UnknownName(f"{source} {spec!r}: no user {user_arg!r} in the image's /etc/passwd")
        uid = _in_range(int(user_arg), "uid", spec, source)
    additional: tuple[int, ...] = ()
    if group_arg:
        groups = [g for g in _group_entries(group)
                  if (g.gid == int(group_arg) if NUMBER.fullmatch(group_arg) else g.name == group_arg)]
        if groups:
            gid = groups[0].gid
        elif NUMBER.fullmatch(group_arg):
            gid = _in_range(int(group_arg), "gid", spec, source)
        else:
            raise UnknownName(f"{source} {spec!r}: no group {group_arg!r} in the image's /etc/group")
    elif name is not None:
        additional = tuple(g.gid for g in _group_entries(group) if name in g.members)
    return ImageUser(uid, gid, additional, home or None)
