"""Image layouts and archives built from the host's static busybox, for the image tests (no network).

Plain tarfile, hashlib and json: what a registry, `docker save` or a build tool would write,
written by hand, so the tests know exactly what each image holds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from actorctl.bundle import BUSYBOX

__all__ = ["IMAGE_CONFIG", "SLEEPING", "LayerEntry", "add_members", "busybox_layer", "diff_id_of", "docker_archive",
           "layer_of", "manifest_digest", "oci_layout", "tar_directory", "tar_layer", "tar_member"]

IMAGE_CONFIG: dict[str, Any] = {
    "Env": ["PATH=/usr/local/bin:/bin", "GREETING=hello from the image"],
    "Entrypoint": ["/bin/sh", "-c", 'echo "args: $*"; env; echo "pwd: $(pwd)"; echo "uid: $(id -u):$(id -g)"', "sh"],
    "Cmd": ["first", "second"],
    "WorkingDir": "/srv/work",
    "User": "1234:4321",
}
"""A config whose container says what it got: its args, environment, working dir and user."""
SLEEPING = {**IMAGE_CONFIG, "Entrypoint": ["/bin/sleep"], "Cmd": ["1000"]}
"""An image whose container runs until it is killed."""

LayerEntry = tuple[str, str, bytes | str | None]
"""(kind, path in the layer, content): kind "file" (bytes), "dir" (None) or "symlink" (its target)."""


def layer_of(entries: list[LayerEntry]) -> bytes:
    """A gzip'd tar layer holding `entries`, in order, owned by root."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, content in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif kind == "symlink":
                assert isinstance(content, str)
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                assert isinstance(content, bytes)
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "", mode: int = 0o644,
               uid: int = 0, gid: int = 0, device: tuple[int, int] = (0, 0),
               xattrs: dict[str, bytes] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    """One member of a layer as an image's author may write it: any kind, mode, owner, device
    number, link target and (PAX SCHILY.xattr.*) extended attributes."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, 1_700_000_000
    info.uid, info.gid, info.uname, info.gname = uid, gid, "root", "root"  # names the host would map to 0
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.devmajor, info.devminor = device
    info.pax_headers = {f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
                        for key, value in (xattrs or {}).items()}
    return info, data


def tar_layer(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A gzip'd PAX tar layer of `members` (from tar_member), in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def diff_id_of(layer: bytes) -> str:
    """A gzip'd layer's diff id: the digest of its uncompressed tar."""
    return f"sha256:{hashlib.sha256(gzip.decompress(layer)).hexdigest()}"


def manifest_digest(layout: Path, tag: str = "latest") -> str:
    """The digest of the manifest tagged `tag` in the OCI layout."""
    index = json.loads((layout / "index.json").read_text())
    digest: str = next(m["digest"] for m in index["manifests"]
                       if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
    return digest


def busybox_layer() -> bytes:
    """A root with busybox and its applets in /bin, /etc/passwd and /etc/group, /srv/work."""
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    entries: list[LayerEntry] = [("dir", name, None) for name in ("bin", "dev", "proc", "sys", "tmp", "etc",
                                                                 "root", "srv", "srv/work")]
    entries.append(("file", "bin/busybox", Path(BUSYBOX).read_bytes()))
    entries += [("symlink", f"bin/{applet}", "busybox") for applet in applets if applet != "busybox"]
    entries.append(("file", "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nworker:x:1234:4321::/srv:/bin/sh\n"))
    entries.append(("file", "etc/group", b"root:x:0:\nworkers:x:4321:\n"))
    return layer_of(entries)


def _blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_layout(path: Path, config: dict[str, Any], layers: list[bytes], tags: tuple[str, ...] = ("latest",)) -> Path:
    """An OCI image layout at `path` with one image (`config`, `layers`) under each of `tags`."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    image = {"architecture": "amd64", "os": "linux", "config": config,
             "rootfs": {"type": "layers",
                        "diff_ids": [f"sha256:{hashlib.sha256(gzip.decompress(layer)).hexdigest()}"
                                     for layer in layers]}}
    config_ref = _blob(blobs, json.dumps(image).encode())
    layer_refs = [_blob(blobs, layer) for layer in layers]
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_ref},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **ref} for ref in layer_refs]}
    manifest_ref = _blob(blobs, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest_ref,
         "annotations": {"org.opencontainers.image.ref.name": tag}} for tag in tags]}
    (path / "index.json").write_text(json.dumps(index))
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return path


def tar_directory(directory: Path, archive: Path) -> Path:
    """`directory`'s content as a plain tar at `archive` (names relative to it, as `tar -C DIR .`)."""
    with tarfile.open(archive, "w") as tar:
        for child in sorted(directory.iterdir()):
            tar.add(child, arcname=child.name)
    return archive


def docker_archive(archive: Path, repo_tag: str, config: dict[str, Any], layers: list[bytes], *,
                   created: str | None = None) -> Path:
    """What `docker save` writes: manifest.json, the config JSON and one uncompressed tar per layer.
    `created`: the image config's creation time (RFC 3339), if it is to have one."""
    plain = [gzip.decompress(layer) for layer in layers]
    image: dict[str, Any] = {"architecture": "amd64", "os": "linux", "config": config,
                             "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"
                                                                       for layer in plain]}}
    if created is not None:
        image["created"] = created
    image_json = json.dumps(image).encode()
    config_name = f"{hashlib.sha256(image_json).hexdigest()}.json"
    members: dict[str, bytes] = {config_name: image_json}
    layer_names = []
    for layer in plain:
        name = f"{hashlib.sha256(layer).hexdigest()}/layer.tar"
        members[name] = layer
        layer_names.append(name)
    members["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": [repo_tag],
                                            "Layers": layer_names}]).encode()
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return archive


def add_members(archive: Path, extra: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """`archive` rewritten with `extra` members (each with its content) after its own: what an
    attacker would add to a real image archive."""
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isreg() else None
            members.append((member, handle.read() if handle else b""))
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in [*members, *extra]:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return archive
