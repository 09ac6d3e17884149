"""The persistent root (`--root`, default /var/lib/actord): what must outlive a reboot.

    <root>/actord.lock                          flock held by the running daemon
    <root>/events.seq                           the highest event sequence number ever issued
    <root>/containers/<id>/definition.json      a container under a restart policy
    <root>/containers/<id>/config.json          its bundle's config.json, the bytes its first start read
    <root>/pods/<pod id>/                       a CRI pod sandbox: its record, files and infra bundle
                                                (see actors.pods.store)
    <root>/images/                              the ImageService's: images, layers, and the bundles of
                                                containers of images (see actors.images.service)

The state dir (`--state-dir`, /run/actord) holds what runs now and is wiped by a reboot;
the next `actord start` finds the definitions here and brings back the containers whose
policy says so. Checkpoints stay in their bundles (`<bundle>/checkpoints/`), already on disk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from actors.statedir import write_json_atomic
from actors.wire.api import CONTAINER_ID
from actors.wire.records import ContainerDefinition, read_record
from hostos.atomicfile import write_file_atomic

__all__ = ["DEFAULT_ROOT", "RootDir"]

DEFAULT_ROOT = "/var/lib/actord"


class RootDir:
    """Paths under the persistent root, and its container definitions."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(root))

    @property
    def lock_file(self) -> Path:
        return self.root / "actord.lock"

    @property
    def event_seq(self) -> Path:
        return self.root / "events.seq"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def pods(self) -> Path:
        """The pod store (actors/pods/store.py)."""
        return self.root / "pods"

    @property
    def image_bundles(self) -> Path:
        """Where the ImageService keeps the bundle of each container of an image (by id)."""
        return self.images / "containers"

    def container(self, container_id: str) -> Path:
        return self.containers / container_id

    def config(self, container_id: str) -> Path:
        return self.container(container_id) / "config.json"

    def prepare(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.containers.mkdir(mode=0o700, exist_ok=True)

    def save(self, definition: ContainerDefinition) -> None:
        """Write a definition (durably: it is what a reboot leaves)."""
        directory = self.container(definition["id"])
        directory.mkdir(mode=0o700, exist_ok=True)
        write_json_atomic(directory / "definition.json", definition, durable=True)

    def keep_config(self, container_id: str, data: bytes) -> None:
        """Keep the bytes of the config.json a container first started from beside its definition
        (durably): restarts run what was started. The worker that read and checked them writes
        them; nothing reads the bundle a second time."""
        directory = self.container(container_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        write_file_atomic(self.config(container_id), data, durable=True)

    def forget(self, container_id: str) -> None:
        shutil.rmtree(self.container(container_id), ignore_errors=True)

    def definitions(self) -> list[ContainerDefinition]:
        """Every readable definition; a damaged one is skipped (and left for an operator)."""
        found = []
        for directory in sorted(self.containers.iterdir()) if self.containers.is_dir() else []:
            if CONTAINER_ID.match(directory.name):
                definition = read_record(directory / "definition.json", ContainerDefinition)
                if definition is not None and definition["id"] == directory.name:
                    found.append(definition)
        return found
