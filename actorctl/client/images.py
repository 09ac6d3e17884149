"""The image methods of `Client`: the daemon owns the images (pulls, imports, the store), so
each is a request, and an import streams the archive through the API (it works as well over
tcp with CURVE as on the daemon's own machine)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actorctl.client.errors import ImageFailure
from actorctl.client.transport import Transport

__all__ = ["Image", "ImageMethods", "PullProgress"]

PULL_TIMEOUT = 3600.0
"""Seconds a pull (or an import) may take by default before the call gives up waiting."""
UPLOAD_CHUNK = 512 * 1024
"""Bytes per `images.import_chunk`: well under the 1 MiB frame limit."""

PullProgress = Callable[[dict[str, Any]], None]
"""Called with each image event of a pull (`type` "pull-progress", `stage`, `item`, `count`)."""


@dataclass(frozen=True)
class Image:
    """One name in the daemon's store and the image it names."""

    name: str
    """The full name: `docker.io/library/busybox`."""
    tag: str | None
    """None for an image pulled by digest alone."""
    digest: str
    """The manifest's digest (this platform's manifest of a multi-platform image)."""
    id: str
    """The image config's digest (docker's IMAGE ID)."""
    size: int
    """Bytes of config and compressed layers."""
    created: str | None
    raw: dict[str, Any]

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Image:
        return cls(name=str(data["name"]), tag=data.get("tag"), digest=str(data["digest"]), id=str(data["id"]),
                   size=int(data["size"]), created=data.get("created"), raw=data)

    @property
    def reference(self) -> str:
        """NAME:TAG, or NAME@DIGEST."""
        return f"{self.name}:{self.tag}" if self.tag else f"{self.name}@{self.digest}"


def _topic_prefix(ref: str) -> str:
    """The event topic prefix of the pull of `ref` (normalized as the daemon does)."""
    from actors.images.reference import InvalidReference, parse_reference
    from actors.wire.events import IMAGE_PREFIX

    try:
        return f"{IMAGE_PREFIX}{parse_reference(ref)}/"
    except InvalidReference as exc:
        raise ImageFailure("invalid_params", str(exc)) from None


class ImageMethods(Transport):
    """Pull, import, list, inspect, remove and prune images in the daemon's store."""

    def pull(self, ref: str, *, progress: PullProgress | None = None, timeout: float = PULL_TIMEOUT,
             auth: Mapping[str, str] | None = None) -> Image:
        """Pull `ref` (by tag or digest; a name without a registry is tried against the daemon's
        search registries) into the daemon's store; `progress` gets each step (read from the
        event socket, which is local: over tcp there is no progress). `auth`: credentials for
        this pull, `{"username", "password"}` or `{"identity_token"}`, and `registry` (the host
        they are for; default: the image's), in place of the daemon's --auth-file for that
        registry (they reach skopeo through a memfd, never a file or a command line). Two pulls of
        one image at once with the same credentials share one download. ImageFailure says why
        one fails."""
        params: dict[str, Any] = {"ref": ref} if auth is None else {"ref": ref, "auth": dict(auth)}
        if progress is None or not self.address.startswith("ipc://"):
            return Image.from_wire(self.call("images.pull", params, timeout=timeout))
        from actorctl.client.events import attach
        from actors.wire import WireError
        from actors.wire.events import decode_image_event

        def report(frames: list[bytes]) -> None:
            try:
                event = decode_image_event(frames)
            except WireError:
                return  # a welcome, another subscriber's
            if event["type"] == "pull-progress":
                progress(dict(event))

        events_address = self.call("version")["events_address"]
        sub = attach(events_address, (_topic_prefix(ref),), timeout=self.timeout)
        try:
            return Image.from_wire(self.call_raw(self._request("images.pull", params), timeout,
                                                 meanwhile=(sub, report)))
        finally:
            sub.close()

    @staticmethod
    def _request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        from actors.wire.api import PROTOCOL_VERSION

        return {"v": PROTOCOL_VERSION, "method": method, "params": params}

    def import_image(self, archive: str | os.PathLike[str], name: str | None = None, *,
                     timeout: float = PULL_TIMEOUT) -> list[str]:
        """Stream `archive` (an OCI layout tarball or a `docker save` archive) to the daemon, which
        checks it and imports every image in it; the NAME:TAG each is stored under (normalized:
        `docker.io/library/busybox:latest`). `name`: for images the archive names only by a tag
        (OCI) or not at all (default: the file's name). ImageFailure if it cannot be used."""
        path = Path(archive)
        try:
            source = path.open("rb")
        except OSError as exc:
            raise ImageFailure("invalid_params", f"cannot read {archive}: {exc.strerror or exc}") from None
        upload = self.call("images.import_begin")["upload"]
        try:
            with source:
                offset = 0
                while chunk := source.read(UPLOAD_CHUNK):
                    offset = self.call("images.import_chunk", {"upload": upload, "offset": offset, "data": chunk})[
                        "received"]
        except BaseException:
            try:
                self.call("images.import_cancel", {"upload": upload})
            except Exception:
                pass
            raise
        params: dict[str, Any] = {"upload": upload, "filename": path.name}
        if name is not None:
            params["name"] = name
        return list(self.call("images.import", params, timeout=timeout)["imported"])

    def images(self) -> list[Image]:
        """The images in the daemon's store, by name and tag."""
        return [Image.from_wire(item) for item in self.call("images.list")]

    def inspect_image(self, ref: str) -> dict[str, Any]:
        """One image (a reference, or an image id): its `images()` fields, every name of its
        manifest, its config (Env, Entrypoint, Cmd, ...), layers (diff ids) and the containers
        made from it. NotFound if the store has no such image."""
        result: dict[str, Any] = self.call("images.inspect", {"ref": ref})
        return result

    def remove_image(self, ref: str, force: bool = False, *, timeout: float = PULL_TIMEOUT) -> list[str]:
        """Remove a name (NAME:TAG), every tag of NAME on a manifest (NAME@DIGEST) or every name of an
        image (its id); the names removed. Conflict while a container uses it, unless `force`
        (the container keeps running on its layers)."""
        return list(self.call("images.remove", {"ref": ref, "force": force}, timeout=timeout)["removed"])

    def prune_images(self, *, timeout: float = PULL_TIMEOUT) -> dict[str, list[str]]:
        """Remove the images no tag names and no container uses, and the layers nothing keeps:
        `{"removed": [names], "layers": [diff ids]}`."""
        result: dict[str, list[str]] = self.call("images.prune", timeout=timeout)
        return result
