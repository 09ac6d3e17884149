"""Names as the daemon's store keeps and finds them, the image -> process mapping, config adjustments, archive
recognition, tool messages, and reading images out of a layout (no root, no umoci)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actorctl.images import adjust_unpacked_config, parse_layout_ref, read_image_config, rootfs_config
from actors.images.errors import ImageError
from actors.images.imports import ArchiveImage, archive_images, store_name
from actors.images.reference import Reference, parse_reference
from actors.images.runtime_spec import image_command
from actors.images.store import ImageStore, StoredImage, tool_message
from tests.oci_images import layer_of, oci_layout

DIGEST = "sha256:" + "1" * 64


def dockers(path: str, tag: str | None = "latest", digest: str | None = None) -> Reference:
    return Reference("docker.io", path, tag, digest)


def test_the_store_keeps_names_with_a_tag_and_no_brackets() -> None:
    assert store_name("bb") == dockers("library/bb")
    with pytest.raises(ImageError, match="stored under NAME:TAG, not under a digest"):
        store_name(f"bb:v1@{DIGEST}")
    with pytest.raises(ImageError, match="IPv6"):
        store_name("[::1]:5000/bb:v1")


def test_what_names_a_stored_image() -> None:
    stored = StoredImage(dockers("library/bb", "v1"), "bb:v1", DIGEST, "", 1, None)
    for wanted in ("bb:v1", "docker.io/library/bb:v1", f"bb@{DIGEST}", f"library/bb:v1@{DIGEST}"):
        assert stored.matches(parse_reference(wanted)), wanted
    for wanted in ("bb", "bb:v2", "other:v1", f"bb@sha256:{'2' * 64}", f"bb:v2@{DIGEST}", "docker.io/bb/bb:v1"):
        assert not stored.matches(parse_reference(wanted)), wanted
    index_digest = f"sha256:{'3' * 64}"
    by_index = StoredImage(dockers("library/bb", None, index_digest), f"bb@{index_digest}", DIGEST, "", 1, None)
    assert by_index.matches(parse_reference(f"bb@{index_digest}")), "pulled by an index's digest, found by it"
    assert by_index.matches(parse_reference(f"bb@{DIGEST}")), "and by its platform manifest's"


@pytest.mark.parametrize(("text", "layout", "tag"), [
    ("./img", "img", "latest"),
    ("./img:v1", "img", "v1"),
    ("/srv/images/bb:1.36", "/srv/images/bb", "1.36"),
    ("/srv/v1.2/img", "/srv/v1.2/img", "latest"),
])
def test_layout_refs(text: str, layout: str, tag: str) -> None:
    assert parse_layout_ref(text) == (Path(layout), tag)


@pytest.mark.parametrize(("text", "complaint"), [
    (":v1", "names no layout"), ("a:b:c", "cannot hold ':'"), ("img:-x", "is not a tag")])
def test_bad_layout_refs(text: str, complaint: str) -> None:
    with pytest.raises(ImageError, match=complaint):
        parse_layout_ref(text)


def test_command_is_entrypoint_then_cmd_or_args() -> None:
    image = {"Entrypoint": ["/bin/app", "--serve"], "Cmd": ["--port", "80"]}
    assert image_command(image, []) == ["/bin/app", "--serve", "--port", "80"]
    assert image_command(image, ["--port", "8080"]) == ["/bin/app", "--serve", "--port", "8080"]
    assert image_command({"Cmd": ["sh"]}, []) == ["sh"]
    assert image_command({"Cmd": ["sh"]}, ["ls", "/"]) == ["ls", "/"], "args replace Cmd"
    assert image_command({"Entrypoint": None, "Cmd": None}, ["true"]) == ["true"]
    with pytest.raises(ImageError, match="neither Entrypoint nor Cmd"):
        image_command({"Env": ["A=1"]}, [])


def test_unpacked_config_becomes_an_actord_bundle() -> None:
    config = {"process": {"terminal": True, "args": ["old"], "cwd": "/srv"}, "root": {"path": "rootfs"},
              "annotations": {"org.opencontainers.image.title": "t", "org.opencontainers.image.os": "linux",
                              "org.criu.config": "/tmp/x", "org.systemd.property.CPUWeight": "1",
                              "org.opencontainers.runc.x": "y", "com.example": "z",
                              "org.opencontainers.imagex": "no", "ORG.OPENCONTAINERS.IMAGE.TITLE": "no"}}
    adjust_unpacked_config(config, ["new", "args"], terminal=False)
    assert config == {"process": {"terminal": False, "args": ["new", "args"], "cwd": "/srv"},
                      "root": {"path": "rootfs", "readonly": False},
                      "annotations": {"org.opencontainers.image.title": "t", "org.opencontainers.image.os": "linux"}}


@pytest.mark.parametrize("annotations", [None, "not a map", ["a", "list"]])
def test_unpacked_config_without_a_map_of_annotations_gets_none(annotations: object) -> None:
    config = {"process": {"args": ["old"]}, "annotations": annotations}
    adjust_unpacked_config(config, ["sh"], terminal=False)
    assert config["annotations"] == {}


def test_rootfs_config_is_read_only_with_a_tmp() -> None:
    spec = {"process": {"terminal": True, "args": ["sh"]}, "root": {"path": "rootfs", "readonly": True},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}
    config = rootfs_config(spec, Path("/srv/root"), ["ls"], terminal=False, has_tmp=True)
    assert config["root"] == {"path": "/srv/root", "readonly": True}
    assert config["process"] == {"terminal": False, "args": ["ls"]}
    assert [m["destination"] for m in config["mounts"]] == ["/proc", "/tmp"]
    assert len(spec["mounts"]) == 1, "the spec given is not changed"
    assert [m["destination"] for m in rootfs_config(spec, Path("/r"), ["ls"], terminal=True,
                                                    has_tmp=False)["mounts"]] == ["/proc"]


def test_images_of_an_oci_index() -> None:
    index = {"manifests": [
        {"digest": "sha256:1", "annotations": {"org.opencontainers.image.ref.name": "v1"}},
        {"digest": "sha256:2", "annotations": {"org.opencontainers.image.ref.name": "team/app:2.0"}},
        {"digest": "sha256:3"},
    ]}
    assert archive_images("oci", index, "bb") == [ArchiveImage("v1", dockers("library/bb", "v1")),
                                                 ArchiveImage("team/app:2.0", dockers("team/app", "2.0"))]
    assert archive_images("oci", {"manifests": [{"digest": "sha256:3"}]}, "bb") == [
        ArchiveImage("", dockers("library/bb"))], "a lone untagged image takes the default name"
    with pytest.raises(ImageError, match=r"index\.json names no image"):
        archive_images("oci", {"manifests": None}, "bb")


def test_images_of_a_docker_manifest() -> None:
    manifest = [{"Config": "c.json", "RepoTags": ["busybox:1.36", "busybox:latest"], "Layers": []},
                {"Config": "d.json", "RepoTags": None, "Layers": []}]
    assert archive_images("docker", manifest, "saved") == [
        ArchiveImage("busybox:1.36", dockers("library/busybox", "1.36")),
        ArchiveImage("busybox:latest", dockers("library/busybox")),
        ArchiveImage("@1", dockers("library/saved"))]
    with pytest.raises(ImageError, match=r"manifest\.json names no image"):
        archive_images("docker", {"not": "a list"}, "saved")
    with pytest.raises(ImageError, match="must be lowercase"):
        archive_images("docker", [{"RepoTags": ["UPPER:x"]}], "saved")


def test_tool_messages() -> None:
    assert tool_message("   \N{VECTOR OR CROSS PRODUCT} tag is not found: nope   \n") == "tag is not found: nope"
    skopeo = ('time="2026-01-01T00:00:00Z" level=fatal msg="initializing source docker-archive:/x: '
              'loading tar component \\"manifest.json\\": invalid tar header"\n')
    assert tool_message(skopeo) == 'initializing source docker-archive:/x: loading tar component ' \
                                   '"manifest.json": invalid tar header'
    assert tool_message("") == ""


def test_image_config_read_from_a_layout(tmp_path: Path) -> None:
    config = {"Env": ["A=1"], "Cmd": ["sh"], "User": "1:2"}
    layout = oci_layout(tmp_path / "l", config, [layer_of([("file", "hello", b"hi")])], tags=("latest", "v1"))
    assert read_image_config(layout, "v1") == config
    with pytest.raises(ImageError, match=r"has no image tagged 'v2' \(it has: latest, v1\)"):
        read_image_config(layout, "v2")
    blob = next(p for p in (layout / "blobs" / "sha256").iterdir() if b'"Env"' in p.read_bytes())
    blob.write_bytes(blob.read_bytes().replace(b"A=1", b"A=2"))
    with pytest.raises(ImageError, match="does not match its digest"):
        read_image_config(layout, "latest")
    (layout / "index.json").write_text('{"manifests": [{"digest": "../../etc/passwd", "annotations": '
                                       '{"org.opencontainers.image.ref.name": "latest"}}]}')
    with pytest.raises(ImageError, match="is not sha256:<64 hex digits>"):
        read_image_config(layout, "latest")
    (layout / "oci-layout").unlink()
    with pytest.raises(ImageError, match="is not an OCI image layout"):
        read_image_config(layout, "latest")


def test_the_store_lists_what_its_layout_names(tmp_path: Path) -> None:
    layer = layer_of([("file", "hello", b"hi")])
    layout = oci_layout(tmp_path / "oci", {"Cmd": ["sh"]}, [layer], tags=("bb:v1",))
    manifest_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.removeprefix("sha256:")).read_text())
    store = ImageStore(tmp_path)
    [image] = store.images()
    assert image == StoredImage(dockers("library/bb", "v1"), "bb:v1", manifest_digest, manifest["config"]["digest"],
                                manifest["config"]["size"] + len(layer), None)
    assert store.find([parse_reference("docker.io/library/bb:v1")]) == image
    assert store.find(manifest["config"]["digest"].removeprefix("sha256:")[:12]) == image, "by id"
    with pytest.raises(ImageError, match="no image bb:v2 in the store"):
        store.find([parse_reference("bb:v2")])
    config_blob = layout / "blobs" / "sha256" / image.config_digest.removeprefix("sha256:")
    config_blob.write_bytes(config_blob.read_bytes().replace(b"sh", b"ls"))
    assert store.images()[0].size == 0, "a damaged image is listed all the same, so that it can be removed"
