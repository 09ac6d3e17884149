"""Imports of image archives (an OCI layout tarball or a `docker save` archive) into the store.

The archive is a private file of the store (`<images>/import-*/archive`, in a 0700 dir): one
uploaded through the API (`uploads.py`), or the daemon's own copy of a path it was given. That
very file is checked member by member (`archive.read_archive`: only what such an archive holds)
and then read by skopeo, so nothing can change it between the check and the copy; it is removed
whatever happens.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from actors.images.archive import read_archive
from actors.images.errors import ImageError
from actors.images.reference import InvalidReference, Reference, parse_reference
from actors.images.store import REF_NAME, ImageStore, run_tool

__all__ = ["ArchiveImage", "archive_images", "copy_private", "default_image_name", "import_archive", "store_name"]

COPY_CHUNK = 1 << 20
"""Bytes per read when a path's archive is copied into the store."""


@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive to import: how skopeo names it in the archive, and its name in the store."""

    source: str
    ref: Reference


def default_image_name(archive: str) -> str:
    """The name of an archive's images that name none themselves: its file's name, without
    .tar / .tar.gz / .tgz / .oci."""
    return re.sub(r"(\.tar|\.tar\.gz|\.tgz|\.oci)$", "", Path(archive).name).lower()


def store_name(text: str) -> Reference:
    """The name an image named `text` gets in the store: normalized, with a tag (an OCI layout
    names images by tag, and has no room for an IPv6 host's brackets)."""
    try:
        ref = parse_reference(text)
    except InvalidReference as exc:
        raise ImageError(str(exc)) from None
    if ref.digest is not None:
        raise ImageError(f"{text!r}: an image is stored under NAME:TAG, not under a digest")
    if ref.domain.startswith("["):
        raise ImageError(f"{text!r}: an OCI layout cannot name an image whose registry is an IPv6 address")
    return ref


def archive_images(kind: str, listing: object, default_name: str) -> list[ArchiveImage]:
    """The images an archive holds, from its index.json ("oci") or manifest.json ("docker").

    An OCI ref name that is only a tag, and an untagged image, get `default_name`. Every name is
    stored normalized, as docker does: `dimg:v1` as `docker.io/library/dimg:v1`."""
    found: list[ArchiveImage] = []
    if kind == "oci":
        manifests = listing.get("manifests") if isinstance(listing, dict) else None
        entries = [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []
        for entry in entries:
            annotations = entry.get("annotations")
            name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
            if not isinstance(name, str):
                if len(entries) == 1:
                    found.append(ArchiveImage("", store_name(default_name)))
                continue
            ref = store_name(name if ":" in name or "/" in name else f"{default_name}:{name}")
            found.append(ArchiveImage(name, ref))
    else:
        images = listing if isinstance(listing, list) else []
        for position, image in enumerate(images):
            tags = image.get("RepoTags") if isinstance(image, dict) else None
            if isinstance(tags, list) and tags:
                found += [ArchiveImage(tag, store_name(tag)) for tag in tags if isinstance(tag, str)]
            else:
                found.append(ArchiveImage(f"@{position}", store_name(default_name)))
    if not found:
        raise ImageError(f"its {'index.json' if kind == 'oci' else 'manifest.json'} names no image")
    return found


def copy_private(path: str, target: Path) -> None:
    """Copy the regular file at the absolute `path` (as the daemon, root, reads it) to `target`."""
    if not os.path.isabs(path):
        raise ImageError(f"the archive path {path!r} must be absolute (the daemon reads it)")
    try:
        with open(path, "rb") as source, target.open("xb") as copy:
            if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                raise ImageError(f"{path} is not a regular file")
            shutil.copyfileobj(source, copy, COPY_CHUNK)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from None


def import_archive(store: ImageStore, archive: Path, shown: str, default_name: str) -> list[Reference]:
    """Copy every image of the private file `archive` (`shown` names it in messages) into the store."""
    store_name(default_name)
    with archive.open("rb") as handle:
        kind, listing = read_archive(handle, shown)
    try:
        images = archive_images(kind, listing, default_name)
    except ImageError as exc:
        raise ImageError(f"{shown}: {exc}") from None
    transport = "oci-archive" if kind == "oci" else "docker-archive"
    for image in images:
        source = f"{transport}:{archive}" + (f":{image.source}" if image.source else "")
        with store.staged(str(image.ref)) as staging:
            run_tool(["skopeo", "copy", "--quiet", source, f"oci:{staging}:{image.ref}"], "skopeo")
    store.collect()  # blobs a re-tag left unused
    return [image.ref for image in images]
