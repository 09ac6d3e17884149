"""The OCI runtime spec (config.json) of a container: the base every bundle starts from, and a
container of an image as `docker run IMAGE [ARGS]` would run it.

One place for the rules both image paths follow (the CLI's umoci bundles and the daemon's
overlay bundles): the command is Entrypoint + Cmd, ARGS replacing Cmd; an image is its
author's, and runc reads some annotations (`org.criu.config` names a config file for CRIU,
which runs as root on the host; `org.systemd.property.*` become properties of the container's
systemd unit), so only the OCI's descriptive `org.opencontainers.image.*` ones are kept.
"""

from __future__ import annotations

import copy
import json
import posixpath
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from actors.images.errors import ImageError
from actors.images.users import ImageUser

__all__ = ["IMAGE_ANNOTATIONS", "default_spec", "image_annotations", "image_command", "image_env", "image_spec",
           "working_dir"]

IMAGE_ANNOTATIONS = "org.opencontainers.image."
"""The prefix of the only image annotations (and labels) that reach a bundle's config.json: the
OCI's descriptive ones, which neither runc nor CRIU read."""


def default_spec(runtime: str) -> dict[str, Any]:
    """The config `runc spec` writes: the base every bundle starts from."""
    with tempfile.TemporaryDirectory(prefix="actord-spec-") as scratch:
        subprocess.run([runtime, "spec", "--bundle", scratch], check=True, capture_output=True)
        spec: dict[str, Any] = json.loads((Path(scratch) / "config.json").read_text())
    return spec


def _strings(image_config: dict[str, Any], key: str) -> list[str]:
    """A list-of-strings field of the image config (missing or null: empty)."""
    value = image_config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageError(f"the image config's {key} is not a list of strings")
    return value


def image_command(image_config: dict[str, Any], args: list[str] | None) -> list[str]:
    """What the container runs, as `docker run`: the Entrypoint followed by `args` if given,
    else by the image's Cmd."""
    command = [*_strings(image_config, "Entrypoint"), *(args or _strings(image_config, "Cmd"))]
    if not command:
        raise ImageError("the image has neither Entrypoint nor Cmd: give the command after --")
    return command


def image_annotations(labels: object) -> dict[str, str]:
    """Of an image's labels (or the annotations umoci made of them), the `org.opencontainers.image.*` ones."""
    if not isinstance(labels, dict):
        return {}
    return {key: value for key, value in labels.items()
            if isinstance(key, str) and key.startswith(IMAGE_ANNOTATIONS) and isinstance(value, str)}


def image_env(base: list[str], image_config: dict[str, Any], home: str | None, *, terminal: bool) -> list[str]:
    """The base spec's environment (TERM only with a terminal, as docker), each variable of the
    image's Env replacing one of the same name, then HOME from passwd if neither set it."""
    merged = {entry.partition("=")[0]: entry for entry in base}
    if not terminal:
        merged.pop("TERM", None)
    for entry in _strings(image_config, "Env"):
        merged[entry.partition("=")[0]] = entry
    if "HOME" not in merged and home:
        merged["HOME"] = f"HOME={home}"
    return list(merged.values())


def working_dir(image_config: dict[str, Any]) -> str:
    """The image's WorkingDir as an absolute, normalized path ("/" when it names none)."""
    value = image_config.get("WorkingDir") or "/"
    if not isinstance(value, str):
        raise ImageError("the image config's WorkingDir is not a string")
    return posixpath.normpath("/" + value.lstrip("/"))


def image_spec(base: dict[str, Any], image_config: dict[str, Any], args: list[str] | None, user: ImageUser, *,
               terminal: bool = False) -> dict[str, Any]:
    """`base` (a `runc spec`) made the config of a container of the image: its command (`args`
    replace Cmd), environment, working dir and user, a writable root at `rootfs` (the
    container's own upper dir), a terminal only if asked, the image's OCI labels as annotations."""
    spec: dict[str, Any] = copy.deepcopy(base)
    process = spec["process"]
    process["args"] = image_command(image_config, args)
    process["terminal"] = terminal
    process["env"] = image_env(process.get("env") or [], image_config, user.home, terminal=terminal)
    process["cwd"] = working_dir(image_config)
    process["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        process["user"]["additionalGids"] = list(user.additional_gids)
    spec["root"] = {"path": "rootfs", "readonly": False}
    spec["annotations"] = image_annotations(image_config.get("Labels"))
    return spec
