"""Bundles from OCI images (unpacked by Debian's `umoci`) and around existing root filesystems.

umoci unpacks the layers (containing `../` paths and symlinks that point out of the rootfs
inside it) and writes a config.json that already carries the image config's Env, WorkingDir
and User (names resolved in the image's own /etc/passwd, HOME set); this module picks the
image's command (Entrypoint + Cmd, or Entrypoint + the caller's args, as `docker run`) and
adjusts what actord's bundles differ in. A bundle is unpacked into a fresh directory beside
its destination and renamed into place, so a failed unpack leaves nothing behind.

An image is its author's: umoci copies its labels into the spec's annotations, and runc reads
some (`org.criu.config` names a config file for CRIU, which runs as root on the host;
`org.systemd.property.*` become properties of the container's systemd unit), so only the OCI's
descriptive `org.opencontainers.image.*` ones are kept. The bundle directory is 0700: the
image's setuid files and device nodes are reachable by root alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from actors.images.blobs import read_json_blob
from actors.images.errors import ImageError
from actors.images.reference import DEFAULT_TAG, TAG, InvalidReference, Reference, parse_reference
from actors.images.runtime_spec import image_annotations, image_command
from actors.treeremoval import remove_tree

__all__ = [
    "DEFAULT_TAG",
    "ImageError",
    "ImageSummary",
    "bundle_around_rootfs",
    "bundle_from_layout",
    "image_command",
    "parse_image_ref",
    "parse_layout_ref",
    "read_image_config",
    "run_tool",
    "summarize_image",
    "tool_message",
]

REF_NAME = "org.opencontainers.image.ref.name"
"""The index.json annotation that names (tags) a manifest in an OCI layout."""
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
UMOCI_MARK = "\N{VECTOR OR CROSS PRODUCT}"
"""How umoci starts its error lines."""
LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
MOUNT_POINTS = ("proc", "dev", "sys")
"""Directories runc mounts onto: a rootfs that lacks one would have runc create it in the rootfs."""


def default_image_name(archive: str | os.PathLike[str]) -> str:
    """The name of an archive's images that name none themselves: its file's name, without
    .tar / .tar.gz / .tgz / .oci."""
    return re.sub(r"(\.tar|\.tar\.gz|\.tgz|\.oci)$", "", Path(archive).name).lower()


def parse_image_ref(text: str, *, name_only: bool = False) -> Reference:
    """`[DOMAIN/]NAME[:TAG][@DIGEST]` normalized as docker does (`dimg:v1` is
    `docker.io/library/dimg:v1`); `name_only`: a name without tag or digest. ImageError if it is none."""
    try:
        return parse_reference(text, name_only=name_only)
    except InvalidReference as exc:
        raise ImageError(str(exc)) from None


def parse_layout_ref(text: str) -> tuple[Path, str]:
    """`LAYOUT[:TAG]`: an OCI layout directory and the tag of an image in it (default latest)."""
    head, sep, tail = text.rpartition(":")
    layout, tag = (head, tail) if sep and "/" not in tail else (text, DEFAULT_TAG)
    if not layout:
        raise ImageError(f"{text!r} names no layout directory")
    if ":" in layout:
        raise ImageError(f"{layout!r}: a layout path cannot hold ':' (it separates the tag)")
    if not TAG.fullmatch(tag):
        raise ImageError(f"{text!r}: {tag!r} is not a tag (1 to 128 of A-Z a-z 0-9 _ . -)")
    return Path(layout), tag


def read_index(layout: Path) -> list[dict[str, Any]]:
    """The manifest descriptors of an OCI layout's index.json."""
    if not (layout / "oci-layout").is_file():
        raise ImageError(f"{layout} is not an OCI image layout (no oci-layout file)")
    try:
        index: object = json.loads((layout / "index.json").read_bytes())
    except OSError as exc:
        raise ImageError(f"{layout}/index.json: {exc.strerror}") from None
    except ValueError:
        raise ImageError(f"{layout}/index.json is not JSON") from None
    if not isinstance(index, dict):
        raise ImageError(f"{layout}/index.json is not a JSON object")
    manifests = index.get("manifests") or []  # umoci writes null once the last image is removed
    if not isinstance(manifests, list):
        raise ImageError(f"{layout}/index.json has no manifests list")
    return [m for m in manifests if isinstance(m, dict)]


def tag_of(descriptor: dict[str, Any]) -> str | None:
    annotations = descriptor.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def read_image_config(layout: Path, tag: str) -> dict[str, Any]:
    """The `config` object (Env, Entrypoint, Cmd, ...) of the image tagged `tag` in `layout`."""
    descriptors = [d for d in read_index(layout) if tag_of(d) == tag]
    if not descriptors:
        known = sorted(t for t in map(tag_of, read_index(layout)) if t)
        raise ImageError(f"{layout} has no image tagged {tag!r} (it has: {', '.join(known) or 'none'})")
    manifest = read_json_blob(layout, descriptors[-1].get("digest"), "manifest")
    config_descriptor = manifest.get("config")
    if not isinstance(config_descriptor, dict):
        raise ImageError(f"{layout}: the manifest of {tag!r} is not an image manifest (no config)")
    image = read_json_blob(layout, config_descriptor.get("digest"), "image config")
    config = image.get("config") or {}
    if not isinstance(config, dict):
        raise ImageError(f"{layout}: the image config of {tag!r} has a config that is not an object")
    return config


class ImageSummary(NamedTuple):
    """What docker lists of an image besides its name."""

    size: int
    """Bytes of its config and (compressed) layers."""
    config_digest: str
    """The image config's digest: docker's IMAGE ID."""
    created: str | None
    """The image config's `created` (RFC 3339), if it says."""


def summarize_image(layout: Path, manifest_digest: object) -> ImageSummary:
    """Size, config digest and creation time of the image whose manifest is `manifest_digest`."""
    manifest = read_json_blob(layout, manifest_digest, "manifest")
    config, layers = manifest.get("config"), manifest.get("layers")
    if not isinstance(config, dict) or not isinstance(layers, list):
        raise ImageError(f"{layout}: the manifest {manifest_digest} is not an image manifest (config, layers)")
    try:
        size = sum(int(part["size"]) for part in [config, *layers])
    except (KeyError, TypeError, ValueError):
        raise ImageError(f"{layout}: the manifest {manifest_digest} does not give the size of each part") from None
    created = read_json_blob(layout, config.get("digest"), "image config").get("created")
    return ImageSummary(size, str(config["digest"]), created if isinstance(created, str) else None)


def run_tool(args: list[str], package: str) -> str:
    """Run umoci or skopeo; its stdout, or an ImageError with what it said on stderr."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ImageError(f"{args[0]} is missing (apt-get install {package})") from None
    if done.returncode != 0:
        raise ImageError(f"{args[0]} {args[1]} failed: {tool_message(done.stderr) or f'exit {done.returncode}'}")
    return done.stdout


def tool_message(stderr: str) -> str:
    """What umoci (a cross, then the message) or skopeo (logrus `level=fatal msg="message"`) said, on one line."""
    said = []
    for line in stderr.splitlines():
        logged = LOGRUS_MSG.search(line)
        text = logged.group(1).replace('\\"', '"') if logged else line.strip(f" \t{UMOCI_MARK}")
        if text:
            said.append(text)
    return "; ".join(said)


def _fresh_destination(directory: Path) -> None:
    """A bundle made from an image goes only into a new or empty directory: nothing is overwritten."""
    if os.path.lexists(directory) and (not directory.is_dir() or directory.is_symlink() or any(directory.iterdir())):
        raise ImageError(f"{directory} exists and is not an empty directory")


def bundle_from_layout(layout: Path, tag: str, directory: str | os.PathLike[str], args: list[str], *,
                       terminal: bool = False) -> Path:
    """Unpack image `tag` of the OCI layout into a bundle at `directory`; `args` replace its Cmd."""
    layout = layout.resolve()
    bundle = Path(directory).resolve()
    _fresh_destination(bundle)
    if not layout.is_dir():
        raise ImageError(f"{layout}: no such OCI layout directory")
    image_config = read_image_config(layout, tag)
    command = image_command(image_config, args)
    bundle.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.unpack-", dir=bundle.parent))
    try:
        run_tool(["umoci", "unpack", "--image", f"{layout}:{tag}", str(scratch)], "umoci")
        config_path = scratch / "config.json"
        config = json.loads(config_path.read_text())
        adjust_unpacked_config(config, command, terminal=terminal)
        config_path.write_text(json.dumps(config, indent=2))
        scratch.chmod(0o700)  # mkdtemp's mode, said again: the bundle is root's alone
        os.rename(scratch, bundle)  # onto a missing or empty directory only
    except BaseException:
        with contextlib.suppress(OSError):  # what failed is the news, not a half-unpacked copy left
            remove_tree(scratch)
        raise
    return bundle


def adjust_unpacked_config(config: dict[str, Any], command: list[str], *, terminal: bool) -> None:
    """umoci's config, made an actord bundle's: the chosen command, a terminal only if asked
    (umoci asks for one), a writable root (the container's own copy), and of the image's
    annotations only the `org.opencontainers.image.*` ones."""
    config["process"]["args"] = command
    config["process"]["terminal"] = terminal
    config["root"] = {"path": "rootfs", "readonly": False}
    annotations = config.get("annotations")
    config["annotations"] = image_annotations(annotations)


def rootfs_config(spec: dict[str, Any], rootfs: Path, args: list[str], *, terminal: bool,
                  has_tmp: bool) -> dict[str, Any]:
    """A `runc spec` config around the shared rootfs at `rootfs`: read-only (the container must
    not change it), a tmpfs on /tmp if the rootfs has a /tmp."""
    config: dict[str, Any] = json.loads(json.dumps(spec))
    config["process"]["args"] = args
    config["process"]["terminal"] = terminal
    config["root"] = {"path": str(rootfs), "readonly": True}
    if has_tmp:
        config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                 "options": ["nosuid", "nodev", "mode=1777"]})
    return config


def bundle_around_rootfs(rootfs: str | os.PathLike[str], directory: str | os.PathLike[str], args: list[str], *,
                         runtime: str = "runc", terminal: bool = False) -> Path:
    """Write `<directory>/config.json` running `args` in the existing `rootfs`, which is never written to."""
    from actorctl.bundle import replace_file
    from actors.images.runtime_spec import default_spec

    source = Path(rootfs).resolve()
    bundle = Path(directory).resolve()
    if not source.is_dir():
        raise ImageError(f"{rootfs}: no such root filesystem directory")
    if not args:
        raise ImageError("--rootfs needs the command to run, after --")
    if bundle == source or source in bundle.parents:
        raise ImageError(f"{directory} is inside the rootfs {rootfs}, which is never written to")
    for name in MOUNT_POINTS:
        if not (source / name).is_dir() or (source / name).is_symlink():
            raise ImageError(f"{source}/{name} is not a directory: runc would create it in the rootfs, "
                             f"which --rootfs never writes to")
    tmp = source / "tmp"
    config = rootfs_config(default_spec(runtime), source, args, terminal=terminal,
                           has_tmp=tmp.is_dir() and not tmp.is_symlink())
    bundle.mkdir(parents=True, exist_ok=True)
    replace_file(bundle / "config.json", json.dumps(config, indent=2))
    return bundle
