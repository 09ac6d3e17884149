"""The local image store under actord's root, and the bundles unpacked from it for containers.

    <root>/images/lock            flock: exclusive while an import or rm changes the store, shared while
                                  a container's bundle is unpacked from it
    <root>/images/oci/            one OCI image layout holding every image (blobs shared between them),
                                  each manifest named by its normalized NAME:TAG in index.json
                                  (`docker.io/library/busybox:latest`)
    <root>/images/import-*/       0700, during an import: the private copy of the archive that is
                                  checked (actorctl.imagearchive) and then read by skopeo
    <root>/bundles/lock           flock held from checking a container id to its start (or removal)
    <root>/bundles/<id>/          the bundle (umoci's unpacked copy) of a container started with --image

Imports go through Debian's `skopeo` (`docker-archive:` or `oci-archive:` to `oci:`), removals
through `umoci rm` and `umoci gc`. actorctl does this itself, as root on actord's machine:
the daemon only ever sees the bundle directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from actorctl.imagearchive import read_archive
from actorctl.images import (
    ImageError,
    ImageSummary,
    bundle_from_layout,
    parse_image_ref,
    read_index,
    run_tool,
    summarize_image,
    tag_of,
)
from actors.images.reference import Reference
from actors.treeremoval import remove_tree

__all__ = ["ArchiveImage", "ImageStore", "StoredImage", "archive_images"]

@dataclass(frozen=True)
class ArchiveImage:
    """One image of an archive to import: how skopeo names it in the archive, and its name in the store."""

    source: str
    ref: Reference


@dataclass(frozen=True)
class StoredImage:
    ref: Reference
    """Its name, normalized: `docker.io/library/busybox:latest`."""
    stored_as: str
    """Its ref name in the layout's index.json, which umoci is given: a store filled before names
    were normalized holds `busybox:latest` for `docker.io/library/busybox:latest`."""
    digest: str
    """The manifest's digest."""
    summary: ImageSummary

    def matches(self, wanted: Reference) -> bool:
        """Whether `wanted` (by tag, by digest or by both) names this image."""
        return (wanted.name == self.ref.name and wanted.tag in (None, self.ref.tag)
                and wanted.digest in (None, self.digest))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.ref.name, "tag": self.ref.tag, "digest": self.digest, "size": self.summary.size,
                "id": self.summary.config_digest, "created": self.summary.created}


def archive_images(kind: str, listing: object, default_name: str) -> list[ArchiveImage]:
    """The images an archive holds, from its index.json ("oci") or manifest.json ("docker").

    An OCI ref name that is only a tag, and an untagged image, get `default_name`. Every name is
    stored normalized, as docker does: `dimg:v1` as `docker.io/library/dimg:v1`."""
    found: list[ArchiveImage] = []
    if kind == "oci":
        manifests = listing.get("manifests") if isinstance(listing, dict) else None
        entries = [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else []
        for entry in entries:
            name = tag_of(entry)
            if name is None:
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


def store_name(text: str) -> Reference:
    """The name an image named `text` gets in the store: normalized, with a tag (an OCI layout
    names images by tag, and has no room for an IPv6 host's brackets)."""
    ref = parse_image_ref(text)
    if ref.digest is not None:
        raise ImageError(f"{text!r}: an image is stored under NAME:TAG, not under a digest")
    if ref.domain.startswith("["):
        raise ImageError(f"{text!r}: an OCI layout cannot name an image whose registry is an IPv6 address")
    return ref


T = TypeVar("T")
COPY_CHUNK = 1 << 20
"""Bytes per read when an archive is copied into the store."""


class ImageStore:
    """The store at `<root>/images` and the image bundles at `<root>/bundles`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.directory = self.root / "images"
        self.layout = self.directory / "oci"
        self.bundles = self.root / "bundles"

    def bundle_of(self, container_id: str) -> Path:
        return self.bundles / container_id

    @contextlib.contextmanager
    def _flock(self, path: Path, exclusive: bool) -> Iterator[None]:
        if not self.root.is_dir():
            raise ImageError(f"actord's root {self.root} is not a directory here: images need actorctl on "
                             f"actord's machine")
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def locked(self, exclusive: bool = True) -> contextlib.AbstractContextManager[None]:
        """The store's lock: exclusive to change it, shared to read it."""
        return self._flock(self.directory / "lock", exclusive)

    def bundles_locked(self) -> contextlib.AbstractContextManager[None]:
        """The lock over image bundles: held from looking at a container id to its start or removal."""
        return self._flock(self.bundles / "lock", True)

    def import_archive(self, archive: Path, default_name: str) -> list[Reference]:
        """Copy every image of an OCI layout tarball or a docker save archive into the store.

        The archive is copied into a private directory of the store first, and that copy is what
        is checked (`read_archive`: only the members such an archive has) and what skopeo reads:
        the original could be changed between the two."""
        with self.locked(), self._private_copy(archive) as copy:
            with copy.open("rb") as handle:
                kind, listing = read_archive(handle, str(archive))
            try:
                images = archive_images(kind, listing, default_name)
            except ImageError as exc:
                raise ImageError(f"{archive}: {exc}") from None
            transport = "oci-archive" if kind == "oci" else "docker-archive"
            for image in images:
                source = f"{transport}:{copy}" + (f":{image.source}" if image.source else "")
                run_tool(["skopeo", "copy", "--quiet", source, f"oci:{self.layout}:{image.ref}"], "skopeo")
            run_tool(["umoci", "gc", "--layout", str(self.layout)], "umoci")  # blobs a re-tag left unused
        return [image.ref for image in images]

    @contextlib.contextmanager
    def _private_copy(self, archive: Path) -> Iterator[Path]:
        """A copy of the regular file `archive` in a new 0700 directory of the store, removed after use."""
        scratch = Path(tempfile.mkdtemp(prefix="import-", dir=self.directory))
        try:
            copy = scratch / "archive"
            try:
                with archive.open("rb") as source, copy.open("xb") as target:
                    if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                        raise ImageError(f"{archive} is not a regular file")
                    shutil.copyfileobj(source, target, COPY_CHUNK)
            except OSError as exc:
                raise ImageError(f"cannot read {archive}: {exc.strerror or exc}") from None
            yield copy
        finally:
            remove_tree(scratch)

    def images(self) -> list[StoredImage]:
        """What the store holds, sorted by name and tag."""
        with self.locked(exclusive=False):
            found = self._unlocked_images()
        return sorted(found, key=lambda image: (image.ref.name, image.ref.tag or ""))

    def _unlocked_images(self) -> list[StoredImage]:
        if not (self.layout / "index.json").exists():
            return []
        found = []
        for descriptor in read_index(self.layout):
            name = tag_of(descriptor)
            if name is None:
                continue
            try:
                summary = summarize_image(self.layout, descriptor.get("digest"))
            except ImageError:  # listed all the same, so that it can be removed
                summary = ImageSummary(0, "", None)
            found.append(StoredImage(parse_image_ref(name), name, str(descriptor.get("digest")), summary))
        return found

    def _named(self, ref: Reference) -> list[StoredImage]:
        """The images `ref` names (by tag, digest or both; its name as typed is normalized)."""
        found = [image for image in self._unlocked_images() if image.matches(ref)]
        if not found:
            raise ImageError(f"no image {ref.familiar()} in the store (see: actorctl images list)")
        return found

    def remove(self, ref: Reference) -> None:
        """Remove every name `ref` matches (by digest: each tag of that name on that manifest)."""
        with self.locked():
            for stored_as in dict.fromkeys(image.stored_as for image in self._named(ref)):
                run_tool(["umoci", "rm", "--image", f"{self.layout}:{stored_as}"], "umoci")
            run_tool(["umoci", "gc", "--layout", str(self.layout)], "umoci")

    def unpack(self, ref: Reference, container_id: str, args: list[str]) -> Path:
        """A fresh bundle of image `ref` at `<root>/bundles/<id>` (the caller holds `bundles_locked`)."""
        with self.locked(exclusive=False):
            stored_as = self._named(ref)[0].stored_as
            return bundle_from_layout(self.layout, stored_as, self.bundle_of(container_id), args)

    def start_container(self, ref: Reference, container_id: str, known: Callable[[], bool],
                        start: Callable[[Path], T]) -> T:
        """Unpack `ref` into the container's own bundle and `start` it (the start's result). A
        leftover copy of an exited container of the same id is replaced; the copy goes again if
        the start fails. `known`: whether actord knows a container with this id (then nothing
        is touched and ImageError says so)."""
        with self.bundles_locked():
            if known():
                raise ImageError(f"container {container_id} already exists")
            self.remove_bundle(container_id)
            bundle = self.unpack(ref, container_id, [])
            try:
                return start(bundle)
            except BaseException:
                self.remove_bundle(container_id)
                raise

    def remove_bundle(self, container_id: str) -> bool:
        """Delete a container's image bundle (the caller made sure no container uses it); False if none.

        The rootfs is the container's: any depth, symlinks to host files, maybe a mount point
        (left in place, and the ImageError says so)."""
        bundle = self.bundle_of(container_id)
        if not os.path.lexists(bundle):
            return False
        try:
            remove_tree(bundle)
        except OSError as exc:
            raise ImageError(f"cannot remove the image bundle {bundle}: {exc.strerror or exc}") from None
        return True
