"""Who the process runs as: the security context's run_as_username / run_as_user /
run_as_group, else the image's User, resolved in the rootfs's own /etc/passwd and /etc/group
(read by `rootfs_files`, never the host's), by the rules `actors.images.users` shares with
docker and runc.

containerd's CRI makes the user string as `generateUserString` does: the name wins over the
uid, the group is appended (`name:gid`, `uid:gid`), a group without a user is an error, and
nothing at all means the image's User. The additional gids are the groups of /etc/group that
list the user (the user part alone, whatever group was given), then `supplemental_groups`,
merged, deduplicated and sorted as containerd's `mergeGids`. One difference: containerd 1.6
takes those groups of the CRI's uid even when the image's User decides who runs (uid 0's groups
for an image user `1000`: fixed in containerd 1.7); actord takes the groups of the user that runs.
"""

from __future__ import annotations

from pathlib import Path

from cri_api.v1 import api_pb2

from actors.crispec.errors import CrispecError, ErrorKind, invalid
from actors.crispec.rootfs_files import read_rootfs_file
from actors.images.errors import ImageError
from actors.images.users import MAX_ID, UnknownName, resolve_user

__all__ = ["process_user", "user_string"]


def user_string(context: api_pb2.LinuxContainerSecurityContext, image_user: str) -> tuple[str, str]:
    """The `user[:group]` the process runs as, and what it came from (for errors)."""
    user = ""
    if context.HasField("run_as_user"):
        user = str(_id(context.run_as_user.value, "run_as_user"))
    if context.run_as_username:
        if ":" in context.run_as_username:
            raise invalid(f"security context run_as_username {context.run_as_username!r} contains ':'")
        user = context.run_as_username
    group = str(_id(context.run_as_group.value, "run_as_group")) if context.HasField("run_as_group") else ""
    if not user:
        if group:
            raise invalid(f"security context run_as_group {group} is given without run_as_user or run_as_username")
        return image_user, "the image's User"
    return (f"{user}:{group}" if group else user), "the security context's user"


def _id(value: int, field: str) -> int:
    if not 0 <= value <= MAX_ID:
        raise invalid(f"security context {field} {value} is out of range (0 to {MAX_ID})")
    return value


def process_user(context: api_pb2.LinuxContainerSecurityContext, image_user: str, rootfs: Path) -> dict[str, object]:
    """The spec's `process.user`: uid, gid and additionalGids."""
    spec, source = user_string(context, image_user)
    passwd = read_rootfs_file(rootfs, "/etc/passwd")
    group = read_rootfs_file(rootfs, "/etc/group")
    try:
        resolved = resolve_user(spec, passwd, group, source=source)
        member_of = resolve_user(spec.partition(":")[0], passwd, group, source=source).additional_gids
    except UnknownName as exc:
        raise CrispecError(ErrorKind.NOT_FOUND, str(exc)) from None
    except ImageError as exc:
        raise CrispecError(ErrorKind.INVALID_ARGUMENT, str(exc)) from None
    supplemental = [_id(gid, "supplemental_groups") for gid in context.supplemental_groups]
    user: dict[str, object] = {"uid": resolved.uid, "gid": resolved.gid}
    gids = sorted(set(member_of) | set(supplemental))
    if gids:
        user["additionalGids"] = gids
    return user
