"""Image references, the image -> process mapping, config adjustments, the images an archive lists,
tool messages, and reading an image config out of a layout (no root, no umoci)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorctl.images import (
    ImageError,
    ImageRef,
    adjust_unpacked_config,
    image_command,
    parse_image_ref,
    parse_layout_ref,
    read_image_config,
    rootfs_config,
    tool_message,
)
from actorctl.imagestore import ArchiveImage, archive_images
from tests.oci_images import layer_of, oci_layout


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", ImageRef("busybox", "latest")),
    ("busybox:1.36", ImageRef("busybox", "1.36")),
    ("demo/bb:v2", ImageRef("demo/bb", "v2")),
    ("localhost:5000/team/app", ImageRef("localhost:5000/team/app", "latest")),
    ("localhost:5000/team/app:rc_1", ImageRef("localhost:5000/team/app", "rc_1")),
    ("a.b-c__d/e", ImageRef("a.b-c__d/e", "latest")),
])
def test_image_refs(text: str, expected: ImageRef) -> None:
    assert parse_image_ref(text) == expected
    assert str(expected) == (text if ":" in text.rpartition("/")[2] else f"{text}:latest")


@pytest.mark.parametrize(("text", "complaint"), [
    ("Busybox", "an image name is lowercase"),
    ("bb:", "a tag is"),
    ("bb:.hidden", "a tag is"),
    ("/bb", "an image name"),
    ("bb//x", "an image name"),
    ("", "an image name"),
    ("bb:" + "t" * 129, "a tag is"),
])
def test_bad_image_refs(text: str, complaint: str) -> None:
    with pytest.raises(ImageError, match=complaint):
        parse_image_ref(text)


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
    assert archive_images("oci", index, "bb") == [ArchiveImage("v1", ImageRef("bb", "v1")),
                                                 ArchiveImage("team/app:2.0", ImageRef("team/app", "2.0"))]
    assert archive_images("oci", {"manifests": [{"digest": "sha256:3"}]}, "bb") == [
        ArchiveImage("", ImageRef("bb", "latest"))], "a lone untagged image takes the default name"
    with pytest.raises(ImageError, match=r"index\.json names no image"):
        archive_images("oci", {"manifests": None}, "bb")


def test_images_of_a_docker_manifest() -> None:
    manifest = [{"Config": "c.json", "RepoTags": ["busybox:1.36", "busybox:latest"], "Layers": []},
                {"Config": "d.json", "RepoTags": None, "Layers": []}]
    assert archive_images("docker", manifest, "saved") == [
        ArchiveImage("busybox:1.36", ImageRef("busybox", "1.36")),
        ArchiveImage("busybox:latest", ImageRef("busybox", "latest")),
        ArchiveImage("@1", ImageRef("saved", "latest"))]
    with pytest.raises(ImageError, match=r"manifest\.json names no image"):
        archive_images("docker", {"not": "a list"}, "saved")
    with pytest.raises(ImageError, match="an image name"):
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
