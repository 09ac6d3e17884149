"""The daemon's image store: one OCI image layout at `<root>/images/oci` holding every image
(blobs shared between them), each manifest named in index.json by its normalized reference
(`docker.io/library/busybox:latest`, or `NAME@sha256:...` for an image pulled by digest alone).

skopeo writes into the layout (pulls, imports), this module reads it, edits index.json for
removals and has `umoci gc` collect the blobs no name keeps. Every change holds the store's lock
(a thread lock: the daemon is the layout's only owner), so index.json is never written twice at
once, but only for as long as a local copy takes: a download or an archive goes first into a
private staging layout (`staged`) holding hard links to every blob the store has (so that skopeo
fetches only what is new), and is copied into the store from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.images.blobs import read_json_blob
from actors.images.errors import ImageError
from actors.images.reference import InvalidReference, Reference, parse_reference
from actors.statedir import write_json_atomic
from actors.treeremoval import remove_tree

__all__ = ["IMAGE_ID", "REF_NAME", "ImageStore", "StoredImage", "run_tool", "tool_message"]

REF_NAME = "org.opencontainers.image.ref.name"
"""The index.json annotation that names a manifest in an OCI layout."""
IMAGE_ID = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")
"""An image id as docker takes one: the config's digest, or at least 12 of its first hex digits."""
STAGE_PREFIX = "stage-"
UMOCI_MARK = "\N{VECTOR OR CROSS PRODUCT}"
"""How umoci starts its error lines."""
LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def tool_message(stderr: str) -> str:
    """What umoci (a cross, then the message) or skopeo (logrus `level=fatal msg="message"`) said, on one line."""
    said = []
    for line in stderr.splitlines():
        logged = LOGRUS_MSG.search(line)
        text = logged.group(1).replace('\\"', '"') if logged else line.strip(f" \t{UMOCI_MARK}")
        if text:
            said.append(text)
    return "; ".join(said)


def run_tool(args: list[str], package: str) -> str:
    """Run umoci or skopeo; its stdout, or an ImageError with what it said on stderr."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ImageError(f"{args[0]} is missing (apt-get install {package})") from None
    if done.returncode != 0:
        raise ImageError(f"{args[0]} {args[1]} failed: {tool_message(done.stderr) or f'exit {done.returncode}'}")
    return done.stdout


@dataclass(frozen=True)
class StoredImage:
    """One name in the store and the image it names."""

    ref: Reference
    """Its name, normalized: `docker.io/library/busybox:latest` (a tag, or only a digest)."""
    stored_as: str
    """Its ref name in the layout's index.json."""
    digest: str
    """The manifest's digest."""
    config_digest: str
    """The image config's digest: docker's IMAGE ID."""
    size: int
    """Bytes of its config and (compressed) layers."""
    created: str | None
    """The image config's `created` (RFC 3339), if it says."""

    def matches(self, wanted: Reference) -> bool:
        """Whether `wanted` (by tag, by digest or by both) names this image (pulled by the digest of a
        multi-platform index, its name keeps that digest; the manifest stored is this platform's)."""
        return (wanted.name == self.ref.name and wanted.tag in (None, self.ref.tag)
                and wanted.digest in (None, self.digest, self.ref.digest))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.ref.name, "tag": self.ref.tag, "digest": self.digest, "id": self.config_digest,
                "size": self.size, "created": self.created}


def _stored_ref(name: str) -> Reference | None:
    """The reference a ref name of the layout stands for (names a store kept before are normalized too)."""
    try:
        return parse_reference(name)
    except InvalidReference:
        return None


class ImageStore:
    """The OCI layout at `<images>/oci` and the lock over it."""

    def __init__(self, images_dir: Path) -> None:
        self.directory = images_dir
        self.layout = images_dir / "oci"
        self.lock = threading.RLock()
        """Held while the layout changes (skopeo writing, a removal, a gc) and while it is read."""
        self._readers = 0
        self._no_readers = threading.Condition(self.lock)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Keep every blob in place (no gc) while a container's bundle is made from them, without
        holding the lock (a pull may go on meanwhile)."""
        with self.lock:
            self._readers += 1
        try:
            yield
        finally:
            with self.lock:
                self._readers -= 1
                self._no_readers.notify_all()

    def _index(self) -> dict[str, Any]:
        if not (self.layout / "index.json").exists():
            return {"schemaVersion": 2, "manifests": []}
        try:
            index: object = json.loads((self.layout / "index.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise ImageError(f"{self.layout}/index.json cannot be read: {exc}") from None
        if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
            raise ImageError(f"{self.layout}/index.json is not an OCI index")
        return index

    def images(self) -> list[StoredImage]:
        """Every name the store holds, sorted by name and tag."""
        with self.lock:
            found = [image for d in self._index().get("manifests") or [] if (image := self._describe(d)) is not None]
        return sorted(found, key=lambda image: (image.ref.name, image.ref.tag or "", image.digest))

    def _describe(self, descriptor: object) -> StoredImage | None:
        if not isinstance(descriptor, dict):
            return None
        annotations = descriptor.get("annotations")
        name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        ref = _stored_ref(name) if isinstance(name, str) else None
        if ref is None:
            return None
        digest = str(descriptor.get("digest"))
        try:
            manifest = read_json_blob(self.layout, digest, "manifest")
            config, layers = manifest.get("config"), manifest.get("layers")
            if not isinstance(config, dict) or not isinstance(layers, list):
                raise ImageError(f"the manifest {digest} is not an image manifest")
            size = sum(int(part["size"]) for part in [config, *layers])
            created = read_json_blob(self.layout, config.get("digest"), "image config").get("created")
            config_digest = str(config["digest"])
        except (ImageError, KeyError, TypeError, ValueError):  # listed all the same, so that it can be removed
            size, created, config_digest = 0, None, ""
        assert isinstance(name, str)
        return StoredImage(ref, name, digest, config_digest, size, created if isinstance(created, str) else None)

    def sweep_staging(self) -> None:
        """Remove the staging layouts a previous daemon left."""
        for path in self.directory.glob(f"{STAGE_PREFIX}*"):
            remove_tree(path, missing_ok=True)

    @contextlib.contextmanager
    def staged(self, name: str) -> Iterator[Path]:
        """A private staging layout for the image to be stored as `name`: fill it (skopeo copy to
        `oci:<it>:<name>`) without the lock; on a clean exit it is copied into the store under
        the lock. It is removed whatever happens."""
        scratch = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=self.directory))
        try:
            staging = scratch / "oci"
            (staging / "blobs" / "sha256").mkdir(parents=True)
            with self.lock:  # no gc meanwhile: every blob linked is whole
                blobs = self.layout / "blobs" / "sha256"
                for blob in os.listdir(blobs) if blobs.is_dir() else []:
                    os.link(blobs / blob, staging / "blobs" / "sha256" / blob)
            yield staging
            with self.lock:
                run_tool(["skopeo", "copy", "--quiet", f"oci:{staging}:{name}", f"oci:{self.layout}:{name}"],
                         "skopeo")
        finally:
            remove_tree(scratch, missing_ok=True)

    def find(self, wanted: Iterable[Reference] | str) -> StoredImage:
        """The image named by the first of `wanted` the store has (by tag, digest or both), or the
        image whose id (config digest, or 12+ of its first hex digits) is `wanted`; ImageError
        (not found) otherwise."""
        images = self.images()
        if isinstance(wanted, str):
            match = IMAGE_ID.fullmatch(wanted)
            found = [i for i in images if match and i.config_digest.removeprefix("sha256:").startswith(match[1])]
            if len({i.config_digest for i in found}) > 1:
                raise ImageError(f"image id {wanted} is ambiguous: give more of it")
            if found:
                return found[0]
            raise NotInStore(f"no image with id {wanted} in the store (see: actorctl images list)")
        candidates = list(wanted)
        for ref in candidates:
            for image in images:
                if image.matches(ref):
                    return image
        shown = candidates[-1].familiar() if candidates else "?"
        raise NotInStore(f"no image {shown} in the store (see: actorctl images list, or pull it)")

    def named(self, ref: Reference) -> list[StoredImage]:
        """Every name `ref` matches (by digest: each tag of that name on that manifest)."""
        return [image for image in self.images() if image.matches(ref)]

    def forget(self, names: set[str]) -> None:
        """Remove these ref names from index.json (their blobs stay until `collect`)."""
        with self.lock:
            index = self._index()
            manifests = index.get("manifests") or []
            index["manifests"] = [d for d in manifests if (image := self._describe(d)) is None
                                  or image.stored_as not in names]
            write_json_atomic(self.layout / "index.json", index, durable=True)

    def collect(self) -> None:
        """Delete the blobs no name keeps (`umoci gc`)."""
        with self.lock:
            self._no_readers.wait_for(lambda: self._readers == 0)
            if (self.layout / "index.json").exists():
                run_tool(["umoci", "gc", "--layout", str(self.layout)], "umoci")


class NotInStore(ImageError):
    """No image in the store is named so (a `not_found` to clients)."""
