"""The layer filter's rules on in-memory tars, against a scratch destination (no root; nothing
extracted but the parents a layer does not list): what tarfile's tar_filter checks, what it
would strip and images keep, what it lets through and layers refuse, and OCI whiteouts as
overlayfs's."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from actors.images.errors import ImageError
from actors.images.layerfilter import LayerFilter
from actors.images.layers import layer_compression
from tests.oci_images import tar_layer, tar_member

CAPABILITY = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
"""security.capability v2, cap_net_raw permitted and effective: binary, not UTF-8 text."""


def read_back(*members: tuple[tarfile.TarInfo, bytes]) -> list[tarfile.TarInfo]:
    """The members as tarfile reads them from a real (PAX, gzip'd) layer."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(tar_layer(list(members))))) as tar:
        return tar.getmembers()


def filtered(dest: Path, *members: tuple[tarfile.TarInfo, bytes]) -> tuple[LayerFilter, list[tarfile.TarInfo | None]]:
    layer_filter = LayerFilter()
    return layer_filter, [layer_filter(member, str(dest)) for member in read_back(*members)]


def test_what_tar_filter_strips_an_image_keeps(tmp_path: Path) -> None:
    members = [tar_member("bin/su", data=b"x", mode=0o4755, uid=0, gid=0),
               tar_member("tmp", tarfile.DIRTYPE, mode=0o1777),
               tar_member("srv/shared", tarfile.DIRTYPE, mode=0o2775, uid=1234, gid=4321),
               tar_member("dev/null", tarfile.CHRTYPE, mode=0o666, device=(1, 3)),
               tar_member("dev/sda", tarfile.BLKTYPE, mode=0o660, device=(8, 0)),
               tar_member("run/fifo", tarfile.FIFOTYPE, mode=0o600),
               tar_member("bin/sh", tarfile.SYMTYPE, link="/bin/busybox")]
    stripped = [tarfile.tar_filter(member, str(tmp_path)) for member in read_back(*members)]
    assert [m.mode for m in stripped[:3]] == [0o755, 0o755, 0o755], "what tarfile's own filter does"
    _, kept = filtered(tmp_path, *members)
    assert [(m.name, m.mode, m.uid, m.gid) for m in kept if m] == [
        ("bin/su", 0o4755, 0, 0), ("tmp", 0o1777, 0, 0), ("srv/shared", 0o2775, 1234, 4321),
        ("dev/null", 0o666, 0, 0), ("dev/sda", 0o660, 0, 0), ("run/fifo", 0o600, 0, 0), ("bin/sh", 0o644, 0, 0)]
    assert [(m.type, m.devmajor, m.devminor) for m in kept[3:5] if m] == [(tarfile.CHRTYPE, 1, 3),
                                                                          (tarfile.BLKTYPE, 8, 0)]
    assert kept[6] is not None and kept[6].linkname == "/bin/busybox", "resolved inside the container"


def test_the_parents_a_layer_does_not_list_are_made_0755_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)  # the daemon's
    try:
        _, kept = filtered(tmp_path, tar_member("usr/local/bin/nnp", data=b"x", mode=0o755))
    finally:
        os.umask(previous)
    assert [m.name for m in kept if m] == ["usr/local/bin/nnp"]
    assert [stat.S_IMODE(os.stat(tmp_path / name).st_mode) for name in ("usr", "usr/local", "usr/local/bin")] == \
        [0o755] * 3, "a user other than root reaches the member, as in containerd's unpack"


def test_an_absolute_name_is_kept_inside(tmp_path: Path) -> None:
    _, kept = filtered(tmp_path, tar_member("/etc/passwd", data=b"x"), tar_member("./etc/group", data=b"y"))
    assert [m.name for m in kept if m] == ["etc/passwd", "etc/group"]


@pytest.mark.parametrize(("name", "complaint"), [
    ("../escaped", "outside the destination"),
    ("a/../../escaped", "outside the destination"),
    ("a/../b", "has a '..'"),
])
def test_dotdot_names_are_refused(tmp_path: Path, name: str, complaint: str) -> None:
    with pytest.raises((ImageError, tarfile.FilterError), match=complaint):
        filtered(tmp_path, tar_member(name, data=b"x"))


def test_nothing_goes_through_or_over_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    (tmp_path / "lnk").symlink_to("inside")  # inside the layer: tarfile's realpath check lets it through
    (tmp_path / "out").symlink_to("/etc")
    with pytest.raises(ImageError, match=r"'lnk/passwd' goes through the symlink '/lnk'"):
        filtered(tmp_path, tar_member("lnk/passwd", data=b"x"))
    with pytest.raises(ImageError, match="'lnk' would be written through the symlink"):
        filtered(tmp_path, tar_member("lnk", data=b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):
        filtered(tmp_path, tar_member("out/passwd", data=b"x"))
    _, kept = filtered(tmp_path, tar_member("lnk", tarfile.SYMTYPE, link="/elsewhere"))
    assert kept[0] is not None, "a symlink may replace a symlink"


def test_hard_links_only_to_earlier_members_inside(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"x")
    (tmp_path / "bin" / "sh").symlink_to("/etc/shadow")
    _, kept = filtered(tmp_path, tar_member("bin/ls", tarfile.LNKTYPE, link="/bin/busybox"))
    assert kept[0] is not None and kept[0].linkname == "bin/busybox", "relative to the layer"
    for link, complaint in (("/etc/shadow", "not an earlier member"), ("../../etc/shadow", "has a '..'"),
                            ("bin/sh", "which is a symlink"), ("bin", "which is a directory")):
        with pytest.raises(ImageError, match=complaint):
            filtered(tmp_path, tar_member("hl", tarfile.LNKTYPE, link=link))


def test_whiteouts_become_overlayfs_whiteouts(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "own").write_bytes(b"this layer's")
    layer_filter, kept = filtered(tmp_path, tar_member("etc/.wh.passwd", uid=5, mode=0o644),
                                  tar_member("var/cache/.wh..wh..opq"), tar_member("var/.wh..wh.plnk"),
                                  tar_member("etc/.wh.own"), tar_member(".wh.top"))
    whiteout = kept[0]
    assert whiteout is not None
    assert (whiteout.name, whiteout.type, whiteout.devmajor, whiteout.devminor, whiteout.mode, whiteout.uid) == (
        "etc/passwd", tarfile.CHRTYPE, 0, 0, 0, 0)
    assert kept[1:4] == [None, None, None], "opaque marker, AUFS metadata, a whiteout of this layer's own file"
    assert kept[4] is not None and kept[4].name == "top"
    assert layer_filter.opaque_dirs == ["var/cache"]
    for bad in (".wh.", "etc/.wh..."):
        with pytest.raises(ImageError, match="whiteout of no name"):
            filtered(tmp_path, tar_member(bad))


def test_xattrs_are_kept_for_after_extraction(tmp_path: Path) -> None:
    layer_filter, _ = filtered(tmp_path, tar_member("bin/ping", data=b"x", xattrs={
        "security.capability": CAPABILITY, "user.note": "é".encode(), "trusted.overlay.redirect": b"/etc"}))
    assert layer_filter.xattrs == [("bin/ping", {"security.capability": CAPABILITY, "user.note": "é".encode(),
                                                 "trusted.overlay.redirect": b"/etc"})]


def test_layer_compressions() -> None:
    assert layer_compression("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert layer_compression("application/vnd.oci.image.layer.v1.tar") == "plain"
    with pytest.raises(ImageError, match="zstd-compressed layers are not supported"):
        layer_compression("application/vnd.oci.image.layer.v1.tar+zstd")
    with pytest.raises(ImageError, match="is not a tar layer"):
        layer_compression("application/vnd.oci.image.config.v1+json")
