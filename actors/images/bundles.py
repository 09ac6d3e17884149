"""Bundles of containers of images: `<images>/containers/<id>/` holds the container's
config.json, the chain of its layers (`layers.json`: what keeps them, and what remounts its
root after a reboot), its own `upper/` and `work/` dirs, and `rootfs/`, an overlay of the image's
shared layers under its upper dir, mounted while the bundle exists (and again by `mount` after a
reboot).

A bundle is made in a private scratch dir renamed into place, then mounted; a failure at any
step unmounts and removes what was made. The bundle dir is root's alone (0700); the upper dir is
0755, as it is the container's `/`.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from actors.images.blobs import blob_path, read_json_blob
from actors.images.errors import ImageError
from actors.images.layers import DIFF_ID, LayerStore
from actors.images.layerview import LayerView
from actors.images.overlay import is_mounted, mount_overlay, unmount
from actors.images.runtime_spec import default_spec, image_spec, working_dir
from actors.images.scratch import left_by_a_dead_process, scratch_tag
from actors.images.users import resolve_user
from actors.treeremoval import remove_tree
from actors.wire.api import CONTAINER_ID

__all__ = ["CHAIN_FILE", "PREPARED_MARK", "ImageBundles"]

logger = logging.getLogger(__name__)

CHAIN_FILE = "layers.json"
SCRATCH_MARK = ".new-"
"""A bundle being made is `.<id>.new-<pid>-*` until it is renamed to `<id>`."""
PREPARED_MARK = "prepared"
"""A file the Supervisor puts in a bundle `containers.prepare` made and no start has used yet: a
restarted daemon keeps such a bundle (the CRI releases those it has no record of)."""
OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class ImageBundles:
    """The bundles of containers of images below `<images_dir>/containers`, their layers in
    `<images_dir>/layers`."""

    def __init__(self, images_dir: Path, *, runtime: str = "runc") -> None:
        self.directory = Path(images_dir).resolve()
        self.layers = LayerStore(self.directory / "layers")
        self.containers = self.directory / "containers"
        self.containers.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.runtime = runtime
        self._base_spec: dict[str, Any] | None = None

    def bundle(self, container_id: str) -> Path:
        """The bundle dir of `container_id` (refusing an id that is not one)."""
        if not CONTAINER_ID.match(container_id):
            raise ImageError(f"{container_id!r} is not a container id (letters, digits, _ . -; at most 64)")
        return self.containers / container_id

    def create(self, layout: Path, manifest_digest: str, container_id: str, args: list[str] | None, *,
               terminal: bool = False) -> Path:
        """The bundle of a new container `container_id` of the image `manifest_digest` in the OCI
        layout `layout`, its root mounted; `args` replace the image's Cmd."""
        bundle = self.bundle(container_id)
        if os.path.lexists(bundle):
            raise ImageError(f"container {container_id} already has an image bundle ({bundle})")
        layout = Path(layout).resolve()
        chain, image_config = self._read_image(layout, manifest_digest)
        diff_ids = [diff_id for _, _, diff_id in chain]
        scratch = Path(tempfile.mkdtemp(prefix=f".{container_id}{SCRATCH_MARK}{scratch_tag()}", dir=self.containers))
        made = scratch
        try:
            with self.layers.pinned(diff_ids):
                _write_json(scratch / CHAIN_FILE, {"manifest": manifest_digest, "diff_ids": diff_ids})
                lower = [self.layers.ensure(blob, media_type, diff_id) for blob, media_type, diff_id in chain][::-1]
                view = LayerView(lower)
                user = resolve_user(_user_of(image_config), view.read("/etc/passwd"), view.read("/etc/group"))
                spec = image_spec(self._spec(), image_config, args, user, terminal=terminal)
                _write_json(scratch / "config.json", spec)
                for name, mode in (("upper", 0o755), ("work", 0o700), ("rootfs", 0o755)):
                    (scratch / name).mkdir()
                    (scratch / name).chmod(mode)
                try:
                    os.rename(scratch, bundle)
                except OSError as exc:
                    raise ImageError(f"container {container_id} already has an image bundle ({bundle}): "
                                     f"{exc.strerror}") from None
                made = bundle
                mount_overlay(bundle / "rootfs", lower, bundle / "upper", bundle / "work")
                _make_working_dir(bundle / "rootfs", view, working_dir(image_config))
        except BaseException:
            self._undo(made)
            raise
        return bundle

    def _spec(self) -> dict[str, Any]:
        """`runc spec`'s config, asked for once."""
        if self._base_spec is None:
            self._base_spec = default_spec(self.runtime)
        return self._base_spec

    @staticmethod
    def _read_image(layout: Path, manifest_digest: str) -> tuple[list[tuple[Path, str, str]], dict[str, Any]]:
        """(blob, media type, diff id) of each layer of the image, the bottom one first, and its config."""
        manifest = read_json_blob(layout, manifest_digest, "manifest")
        layers, config_descriptor = manifest.get("layers"), manifest.get("config")
        if not isinstance(layers, list) or not isinstance(config_descriptor, dict):
            raise ImageError(f"{layout}: {manifest_digest} is not an image manifest (no layers and config)")
        image = read_json_blob(layout, config_descriptor.get("digest"), "image config")
        rootfs = image.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not layers:
            raise ImageError(f"{layout}: the image {manifest_digest} has no layers")
        if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            raise ImageError(f"{layout}: the image {manifest_digest} has {len(layers)} layers but its config "
                             f"names {len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff ids")
        chain = []
        for descriptor, diff_id in zip(layers, diff_ids, strict=True):
            if not isinstance(descriptor, dict) or not isinstance(diff_id, str) or not DIFF_ID.fullmatch(diff_id):
                raise ImageError(f"{layout}: the image {manifest_digest} has a layer {descriptor!r} with "
                                 f"the diff id {diff_id!r}")
            media_type = descriptor.get("mediaType")
            chain.append((blob_path(layout, descriptor.get("digest"), "layer"),
                          media_type if isinstance(media_type, str) else "", diff_id))
        config = image.get("config") or {}
        if not isinstance(config, dict):
            raise ImageError(f"{layout}: the image config of {manifest_digest} has a config that is not an object")
        return chain, config

    def _undo(self, made: Path) -> None:
        """What a failed create made goes: the mount, then the dir."""
        try:
            if is_mounted(made / "rootfs"):
                unmount(made / "rootfs")
            remove_tree(made, missing_ok=True)
        except (OSError, ImageError) as exc:
            logger.error("cannot remove %s after a failed create: %s", made, exc)

    def chain(self, container_id: str) -> list[str]:
        """The diff ids of the container's layers, the bottom one first (from its `layers.json`)."""
        path = self.bundle(container_id) / CHAIN_FILE
        try:
            record: object = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise ImageError(f"container {container_id} has no image bundle") from None
        except (OSError, ValueError) as exc:
            raise ImageError(f"{path} cannot be read: {exc}") from None
        diff_ids = record.get("diff_ids") if isinstance(record, dict) else None
        if not isinstance(diff_ids, list) or not diff_ids or not all(
                isinstance(d, str) and DIFF_ID.fullmatch(d) for d in diff_ids):
            raise ImageError(f"{path} names no chain of layers")
        return diff_ids

    def mount(self, container_id: str) -> Path:
        """Mount the root of an existing bundle again (after a reboot); nothing if it is mounted."""
        bundle = self.bundle(container_id)
        rootfs = bundle / "rootfs"
        if is_mounted(rootfs):
            return bundle
        diff_ids = self.chain(container_id)
        with self.layers.pinned(diff_ids):
            lower = [self.layers.path(diff_id) for diff_id in reversed(diff_ids)]
            gone = [diff_id for diff_id, path in zip(reversed(diff_ids), lower, strict=True) if not path.is_dir()]
            if gone:
                raise ImageError(f"container {container_id}: its layers {', '.join(gone)} are gone from the store")
            mount_overlay(rootfs, lower, bundle / "upper", bundle / "work")
        return bundle

    def remove(self, container_id: str) -> None:
        """Unmount the container's root and remove its bundle (nothing if it has none)."""
        bundle = self.bundle(container_id)
        if not os.path.lexists(bundle):
            return
        if is_mounted(bundle / "rootfs"):
            unmount(bundle / "rootfs")
        remove_tree(bundle)

    def sweep(self) -> list[str]:
        """Remove the bundles a crashed process left half made (never mounted: a root is mounted
        only once its bundle is renamed into place); their names."""
        removed = []
        for name in sorted(os.listdir(self.containers)):
            if name.startswith(".") and SCRATCH_MARK in name and left_by_a_dead_process(
                    name.rpartition(SCRATCH_MARK)[2]):
                remove_tree(self.containers / name)
                removed.append(name)
        return removed

    def in_use(self) -> set[str]:
        """The diff ids of every bundle's layers, mounted or not."""
        used: set[str] = set()
        for name in sorted(os.listdir(self.containers)):
            if name.startswith("."):
                continue  # a bundle being made: its layers are pinned
            try:
                used.update(self.chain(name))
            except ImageError as exc:
                logger.error("%s", exc)
        return used


def _user_of(image_config: dict[str, Any]) -> str:
    user = image_config.get("User") or ""
    if not isinstance(user, str):
        raise ImageError("the image config's User is not a string")
    return user


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with open(path, "x") as out:
        json.dump(value, out, indent=2)
        out.flush()
        os.fsync(out.fileno())


def _make_working_dir(rootfs: Path, view: LayerView, path: str) -> None:
    """Make the WorkingDir in the mounted root if the image lacks it (as docker: root's, 0755).

    `view` resolves it (symlinks inside the image); the directories on the way are then opened
    one by one, never following a symlink, so nothing is made outside the root."""
    resolved = view.resolve(path)
    if not resolved.missing:
        if resolved.host is not None and not stat.S_ISDIR(os.lstat(resolved.host).st_mode):
            raise ImageError(f"the image's WorkingDir {path} is not a directory")
        return
    if ".." in resolved.missing:
        raise ImageError(f"the image's WorkingDir {path} cannot be made: it climbs out of a missing directory")
    fd = os.open(rootfs, OPEN_DIRECTORY)
    try:
        for name in resolved.found:
            fd = _descend(fd, name)
        for name in resolved.missing:
            os.mkdir(name, 0o755, dir_fd=fd)
            fd = _descend(fd, name)
            os.fchmod(fd, 0o755)
    finally:
        os.close(fd)


def _descend(parent: int, name: str) -> int:
    """Open directory `name` below `parent` (no symlink followed); `parent` is closed once it is open."""
    child = os.open(name, OPEN_DIRECTORY, dir_fd=parent)
    os.close(parent)
    return child
