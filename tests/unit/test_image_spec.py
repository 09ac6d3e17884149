"""The runtime spec of a container of an image, without umoci: the User resolved in the image's
passwd and group as docker does, Env, WorkingDir, command and annotations over `runc spec`'s
base; and the overlay's mount options (no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from actors.images.errors import ImageError
from actors.images.overlay import MOUNT_DATA_LIMIT, overlay_options
from actors.images.runtime_spec import image_spec
from actors.images.users import ImageUser, resolve_user
from tests.oci_images import IMAGE_CONFIG

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
# a comment
broken:x:notanumber:0::/nowhere:/bin/sh
worker:x:1234:4321::/srv:/bin/sh
nohome:x:77:77
"""
GROUP = b"""root:x:0:
wheel:x:10:root,worker
workers:x:4321:
staff:x:50:worker
"""
BASE: dict[str, Any] = {
    "ociVersion": "1.0.2-dev", "hostname": "runc",
    "process": {"terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]},
    "root": {"path": "rootfs", "readonly": True},
}
"""What `runc spec` writes, in part."""


@pytest.mark.parametrize(("spec", "expected"), [
    ("", ImageUser(0, 0, (10,), "/root")),
    ("worker", ImageUser(1234, 4321, (10, 50), "/srv")),
    ("1234", ImageUser(1234, 4321, (10, 50), "/srv")),
    ("1234:4321", ImageUser(1234, 4321, (), "/srv")),
    ("worker:staff", ImageUser(1234, 50, (), "/srv")),
    ("worker:999", ImageUser(1234, 999, (), "/srv")),
    ("5000", ImageUser(5000, 0, (), None)),
    ("5000:workers", ImageUser(5000, 4321, (), None)),
    ("nohome", ImageUser(77, 77, (), None)),
])
def test_users_resolve_as_docker_resolves_them(spec: str, expected: ImageUser) -> None:
    assert resolve_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize(("spec", "complaint"), [
    ("nobody", "no user 'nobody' in the image's /etc/passwd"),
    ("broken", "no user 'broken'"),
    ("worker:nogroup", "no group 'nogroup' in the image's /etc/group"),
    ("4294967296", "uid 4294967296 is out of range"),
    ("1:2147483648", "gid 2147483648 is out of range"),
])
def test_users_that_are_not_there_are_refused(spec: str, complaint: str) -> None:
    with pytest.raises(ImageError, match=complaint):
        resolve_user(spec, PASSWD, GROUP)


def test_an_image_without_passwd_or_group() -> None:
    assert resolve_user("", None, None) == ImageUser(0, 0, (), None)
    assert resolve_user("33:33", None, None) == ImageUser(33, 33, (), None)
    with pytest.raises(ImageError, match="no user 'www'"):
        resolve_user("www", None, None)


def test_spec_of_an_image_as_umoci_wrote_it() -> None:
    labels = {"org.opencontainers.image.title": "t", "org.criu.config": "/tmp/x", "org.systemd.property.x": "y",
              "com.example": "z"}
    spec = image_spec(BASE, {**IMAGE_CONFIG, "Labels": labels}, None, resolve_user("1234:4321", PASSWD, GROUP))
    assert spec["process"] == {
        "terminal": False, "user": {"uid": 1234, "gid": 4321}, "args": [*IMAGE_CONFIG["Entrypoint"], "first", "second"],
        "cwd": "/srv/work", "env": ["PATH=/usr/local/bin:/bin", "GREETING=hello from the image", "HOME=/srv"]}
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    assert spec["annotations"] == {"org.opencontainers.image.title": "t"}
    assert spec["hostname"] == "runc" and BASE["process"]["args"] == ["sh"], "the base is copied, not changed"


def test_spec_args_terminal_home_and_groups() -> None:
    config = {"Cmd": ["sh"], "Env": ["HOME=/custom"], "WorkingDir": "relative/../dir", "User": "worker"}
    spec = image_spec(BASE, config, ["ls", "/"], resolve_user("worker", PASSWD, GROUP), terminal=True)
    assert spec["process"]["args"] == ["ls", "/"], "ARGS replace Cmd"
    assert spec["process"]["env"] == [BASE["process"]["env"][0], "TERM=xterm", "HOME=/custom"]
    assert spec["process"]["cwd"] == "/dir"
    assert spec["process"]["user"] == {"uid": 1234, "gid": 4321, "additionalGids": [10, 50]}
    assert spec["process"]["terminal"] is True
    assert image_spec(BASE, {"Cmd": ["sh"]}, None, ImageUser())["process"]["cwd"] == "/"
    for bad in ({"Cmd": "sh -c x"}, {"Cmd": ["sh"], "Env": "A=1"}, {"Cmd": ["sh"], "WorkingDir": 5}):
        with pytest.raises(ImageError, match="is not a"):
            image_spec(BASE, bad, None, ImageUser())


def test_overlay_options_and_their_limit() -> None:
    layers = [Path("/var/lib/actord/images/layers") / f"{n:064x}" for n in range(3)]
    assert overlay_options(layers, Path("/b/upper"), Path("/b/work")) == (
        b"lowerdir=" + b":".join(str(p).encode() for p in layers) + b",upperdir=/b/upper,workdir=/b/work")
    many = [Path("/var/lib/actord/images/layers") / f"{n:064x}" for n in range(60)]
    with pytest.raises(ImageError, match=rf"the overlay of 60 layers needs \d+ bytes of mount options, over the "
                                         rf"kernel's limit of {MOUNT_DATA_LIMIT}"):
        overlay_options(many, Path("/b/upper"), Path("/b/work"))
    for bad in (Path("/a,b"), Path("/a:b"), Path("relative")):
        with pytest.raises(ImageError, match="must be absolute and hold no"):
            overlay_options([bad], Path("/b/upper"), Path("/b/work"))
    with pytest.raises(ImageError, match="at least one lower layer"):
        overlay_options([], Path("/b/upper"), Path("/b/work"))
