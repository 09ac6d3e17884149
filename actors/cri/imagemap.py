"""The daemon's images as the CRI's: one CRI Image per image id, whatever its names.

The daemon lists one entry per name (`{"name", "tag", "digest", "id", "size"}`, as
`images.list`); the CRI wants an image (id: the config's digest, as containerd's) with every
name: `repo_tags` (NAME:TAG) and `repo_digests` (NAME@DIGEST, for tagged names too, as
containerd records both at a pull), and the user its config runs as.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actors.cri.status import Refusal
from actors.images.reference import InvalidReference, parse_reference
from actors.images.store import IMAGE_ID

__all__ = ["ImageNames", "check_image_name", "cri_image", "group_by_id", "user_of"]

MAX_IMAGE_NAME = 1024


@dataclass
class ImageNames:
    """One image (by id) and every name the daemon stores it under."""

    id: str
    size: int = 0
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)


def group_by_id(listed: Iterable[Mapping[str, Any]]) -> dict[str, ImageNames]:
    """The daemon's `images.list` entries gathered per image id, names sorted and each once."""
    found: dict[str, ImageNames] = {}
    for entry in listed:
        image = found.setdefault(str(entry["id"]), ImageNames(str(entry["id"])))
        image.size = max(image.size, int(entry.get("size") or 0))
        if entry.get("tag"):
            tagged = f"{entry['name']}:{entry['tag']}"
            if tagged not in image.repo_tags:
                image.repo_tags.append(tagged)
        pinned = f"{entry['name']}@{entry['digest']}"
        if pinned not in image.repo_digests:
            image.repo_digests.append(pinned)
    for image in found.values():
        image.repo_tags.sort()
        image.repo_digests.sort()
    return found


def user_of(config_user: str) -> tuple[int | None, str]:
    """(uid, user name) of an image config's `User`, as containerd reads it: the part before
    a `:`; a number is a uid, anything else a user name; empty: neither."""
    user = config_user.partition(":")[0]
    if not user:
        return None, ""
    try:
        return int(user), ""
    except ValueError:
        return None, user


def cri_image(image: ImageNames, config_user: str) -> api_pb2.Image:
    uid, username = user_of(config_user)
    found = api_pb2.Image(id=image.id, repo_tags=image.repo_tags, repo_digests=image.repo_digests,
                          size=image.size, username=username, spec=api_pb2.ImageSpec(image=image.id))
    if uid is not None:
        found.uid.value = uid
    return found


def check_image_name(text: str, field_name: str) -> str:
    """`text` if it names an image as the daemon takes it (an image id, or a reference);
    Refusal (INVALID_ARGUMENT, naming the field) otherwise."""
    if not text:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field_name} is empty: give an image reference or id")
    if len(text) > MAX_IMAGE_NAME:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field_name} is over {MAX_IMAGE_NAME} characters")
    if IMAGE_ID.fullmatch(text):
        return text
    try:
        parse_reference(text)
    except InvalidReference as exc:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field_name}: {exc}") from None
    return text
