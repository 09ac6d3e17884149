"""The layer store: each image layer unpacked once, into `<images>/layers/<hex of its diff id>/`,
shared read-only by every container root (an overlay) of every image that has it.

A layer is unpacked into a private (0700) scratch dir beside the others and renamed into place
only once all of it is out and the sha256 of its uncompressed stream (read once, as it is
extracted) is the diff id the image names: a layer dir, once there, is whole and is what its
name says. Two unpacks of one layer race harmlessly: the first rename wins, the other drops
its copy. Layers go when the caller says which to keep (`collect`), never while an overlay
mounted in this namespace has them below it, nor while a container's root is being made of
them (`pinned`). The store is root's alone (0700): layers hold setuid files and device nodes.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import logging
import os
import re
import tarfile
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from actors.images.errors import ImageError
from actors.images.layerfilter import LayerFilter
from actors.images.overlay import overlay_lower_dirs
from actors.images.scratch import left_by_a_dead_process, scratch_tag
from actors.treeremoval import remove_tree

__all__ = ["DIFF_ID", "LayerStore", "layer_compression"]

logger = logging.getLogger(__name__)

DIFF_ID = re.compile(r"sha256:([0-9a-f]{64})")
LAYER_DIR = re.compile(r"[0-9a-f]{64}")
SCRATCH_PREFIX = ".unpack-"
READ_CHUNK = 1 << 20
GZIP_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
PLAIN_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
})
ZSTD_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})


def layer_compression(media_type: str) -> str:
    """"gzip" or "plain" for a layer's media type; an ImageError for any other."""
    if media_type in GZIP_TYPES:
        return "gzip"
    if media_type in PLAIN_TYPES:
        return "plain"
    if media_type in ZSTD_TYPES:
        raise ImageError(f"layer media type {media_type}: zstd-compressed layers are not supported (Python 3.11's "
                         f"standard library has no zstd); use an image with gzip layers")
    raise ImageError(f"layer media type {media_type!r} is not a tar layer (tar, tar+gzip)")


def _layer_hex(diff_id: object) -> str:
    """The hex digest a diff id names (the layer's dir name); an ImageError if it is not sha256."""
    match = DIFF_ID.fullmatch(diff_id) if isinstance(diff_id, str) else None
    if match is None:
        raise ImageError(f"diff id {diff_id!r} is not sha256:<64 hex digits>")
    return match.group(1)


class _HashingReader(io.RawIOBase):
    """A read-only stream that hashes every byte read through it."""

    def __init__(self, source: io.BufferedIOBase) -> None:
        super().__init__()
        self.source = source
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.source.read(len(buffer))
        self.digest.update(data)
        buffer[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read (and hash) what the tar reader left: the end-of-archive blocks and padding."""
        while self.read(READ_CHUNK):
            pass


class LayerStore:
    """Layers unpacked once each, by diff id, below `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self._lock = threading.Lock()
        self._pins: Counter[str] = Counter()

    def path(self, diff_id: str) -> Path:
        """Where the layer `diff_id` is (or would be) unpacked."""
        return self.directory / _layer_hex(diff_id)

    def ensure(self, blob: Path, media_type: str, diff_id: str) -> Path:
        """The layer `diff_id`'s directory, unpacking `blob` (gzip or plain tar) if it is not there yet.

        The caller keeps it from being collected meanwhile with `pinned`."""
        final = self.path(diff_id)
        compression = layer_compression(media_type)
        if final.is_dir() and not final.is_symlink():
            return final
        scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{scratch_tag()}", dir=self.directory))
        try:
            self._unpack(blob, compression, diff_id, scratch)
            self._publish(scratch, final)
        except BaseException:
            with contextlib.suppress(OSError):
                remove_tree(scratch, missing_ok=True)
            raise
        return final

    @staticmethod
    def _unpack(blob: Path, compression: str, diff_id: str, scratch: Path) -> None:
        """Extract `blob` into `scratch` through the layer filter; its stream's digest must be `diff_id`."""
        layer_filter = LayerFilter()
        try:
            with open(blob, "rb") as raw:
                source: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if compression == "gzip" else raw
                hashing = _HashingReader(source)
                with tarfile.open(fileobj=hashing, mode="r|", errorlevel=2) as tar:
                    tar.extractall(str(scratch), numeric_owner=True, filter=layer_filter)
                hashing.drain()
        except ImageError as exc:
            raise ImageError(f"layer {diff_id}: {exc}") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise ImageError(f"layer {diff_id}: {exc}") from None
        except OSError as exc:  # gzip.BadGzipFile among them
            shown = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc.strerror or exc
            raise ImageError(f"layer {diff_id}: {shown}") from None
        actual = f"sha256:{hashing.digest.hexdigest()}"
        if actual != diff_id:
            raise ImageError(f"layer {blob.name}: its uncompressed content is {actual}, not the diff id {diff_id} "
                             f"the image names")
        layer_filter.finish(str(scratch))

    def _publish(self, scratch: Path, final: Path) -> None:
        """Rename the unpacked layer into place; if another unpack got there first, keep its copy."""
        try:
            os.rename(scratch, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
                raise
            remove_tree(scratch)

    @contextlib.contextmanager
    def pinned(self, diff_ids: Iterable[str]) -> Iterator[None]:
        """Keep the layers `diff_ids` from `collect` and `remove` while the block runs (a root being made)."""
        held = [f"sha256:{_layer_hex(diff_id)}" for diff_id in diff_ids]
        with self._lock:
            self._pins.update(held)
        try:
            yield
        finally:
            with self._lock:
                self._pins.subtract(held)
                self._pins += Counter()  # drop the zero counts

    def _in_use(self, diff_id: str, mounted: set[Path]) -> bool:
        return self._pins[diff_id] > 0 or self.path(diff_id) in mounted

    def remove(self, diff_id: str) -> None:
        """Remove the layer `diff_id` (nothing if it is not there); refused while a root uses it."""
        path = self.path(diff_id)
        with self._lock:
            if self._in_use(diff_id, overlay_lower_dirs()):
                raise ImageError(f"layer {diff_id} is in use by a container's root filesystem")
            remove_tree(path, missing_ok=True)

    def collect(self, keep: set[str]) -> list[str]:
        """Remove every layer not in `keep` that no mounted root or root being made uses, and the
        scratch dirs of unpacks that died with their process; the diff ids removed."""
        kept = {_layer_hex(diff_id) for diff_id in keep}
        removed = []
        with self._lock:
            mounted = overlay_lower_dirs()
            for name in sorted(os.listdir(self.directory)):
                if name.startswith(SCRATCH_PREFIX):
                    if left_by_a_dead_process(name.removeprefix(SCRATCH_PREFIX)):
                        logger.info("removing %s, left by an unpack that did not finish", name)
                        remove_tree(self.directory / name)
                    continue
                diff_id = f"sha256:{name}"
                if not LAYER_DIR.fullmatch(name) or name in kept or self._in_use(diff_id, mounted):
                    continue
                remove_tree(self.directory / name)
                removed.append(diff_id)
        return removed
