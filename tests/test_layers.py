"""Layers stored once and container roots as overlays of them (actors.images), with real
overlay mounts on a scratch dir under /tmp; one container runs from such a bundle under a real
actord and runc. Layers are built here (tests/oci_images.py), hostile ones as an image's author
could write them."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.images.bundles import ImageBundles
from actors.images.errors import ImageError
from actors.images.layers import LayerStore
from actors.images.overlay import is_mounted, unmount
from actors.treeremoval import remove_tree
from tests.harness import Daemon, mounts_under, wait_until
from tests.oci_images import (
    IMAGE_CONFIG,
    busybox_layer,
    diff_id_of,
    layer_of,
    manifest_digest,
    oci_layout,
    tar_layer,
    tar_member,
)
from tests.test_images import assert_image_config_honoured, said

GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
CAPABILITY = b"\x01\x00\x00\x02\x00\x20\x00\x00" + bytes(12)
"""security.capability v2: cap_net_raw, permitted and effective."""
MB = 1 << 20


@pytest.fixture(scope="module")
def base_layer() -> bytes:
    return busybox_layer()


@pytest.fixture
def work() -> Iterator[Path]:
    """A scratch dir; afterwards nothing is left mounted below it."""
    directory = Path(tempfile.mkdtemp(prefix="adl-", dir="/tmp"))
    yield directory
    left = mounts_under(directory)
    for point in sorted(left, reverse=True):
        unmount(Path(point))
    remove_tree(directory)
    assert left == [], "a mount outlived its test"


def image(work: Path, name: str, layers: list[bytes], config: dict[str, Any] | None = None) -> tuple[Path, str]:
    """An OCI layout of one image and its manifest's digest."""
    layout = oci_layout(work / name, config or {"Cmd": ["true"]}, layers)
    return layout, manifest_digest(layout)


def blob(work: Path, layer: bytes) -> Path:
    path = work / f"blob-{hashlib.sha256(layer).hexdigest()[:12]}"
    path.write_bytes(layer)
    return path


def disk_usage(top: Path) -> int:
    """Bytes allocated below `top`, not entering mount points (as `du -x`)."""
    device = top.stat().st_dev
    total = 0
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = [d for d in subdirs if os.lstat(os.path.join(directory, d)).st_dev == device]
        total += sum(os.lstat(os.path.join(directory, f)).st_blocks * 512 for f in files)
    return total


def test_whiteouts_and_opaque_dirs_hide_what_lies_below(work: Path) -> None:
    lower = layer_of([("dir", "etc", None), ("file", "etc/deleted", b"x"), ("file", "etc/kept", b"y"),
                      ("dir", "cache", None), ("file", "cache/old1", b"1"), ("file", "cache/old2", b"2")])
    upper = tar_layer([tar_member("etc/.wh.deleted"), tar_member("cache", tarfile.DIRTYPE, mode=0o755),
                       tar_member("cache/.wh..wh..opq"), tar_member("cache/new", data=b"3")])
    bundles = ImageBundles(work / "images")
    bundle = bundles.create(*image(work, "layout", [lower, upper]), "wh", None)
    rootfs = bundle / "rootfs"
    assert sorted(os.listdir(rootfs / "etc")) == ["kept"]
    assert sorted(os.listdir(rootfs / "cache")) == ["new"]
    layer = bundles.layers.path(diff_id_of(upper))
    info = os.lstat(layer / "etc" / "deleted")
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == 0, "overlayfs's whiteout"
    assert os.getxattr(layer / "cache", "trusted.overlay.opaque") == b"y"
    bundles.remove("wh")


def test_the_user_is_looked_up_through_the_layers_never_the_host(work: Path, base_layer: bytes) -> None:
    upper = tar_layer([tar_member("etc", tarfile.DIRTYPE, mode=0o755), tar_member("etc/.wh.group"),
                       tar_member("etc/passwd", tarfile.SYMTYPE, link="/data/../data/passwd"),
                       tar_member("data", tarfile.DIRTYPE, mode=0o755),
                       tar_member("data/passwd", data=b"worker:x:2000:2001::/home/w:/bin/sh\n")])
    bundles = ImageBundles(work / "images")
    layout, digest = image(work, "layout", [base_layer, upper], {**IMAGE_CONFIG, "User": "worker"})
    config = bundles.create(layout, digest, "user", None).joinpath("config.json").read_text()
    assert '"uid": 2000' in config and '"gid": 2001' in config and '"HOME=/home/w"' in config
    bundles.remove("user")

    layout, digest = image(work, "grouped", [base_layer, upper], {**IMAGE_CONFIG, "User": "worker:workers"})
    with pytest.raises(ImageError, match="no group 'workers' in the image's /etc/group"):
        bundles.create(layout, digest, "grouped", None)
    assert os.listdir(bundles.containers) == [], "a failed create leaves no dir"
    assert mounts_under(work) == []


def test_a_layer_two_images_share_is_unpacked_once(work: Path, base_layer: bytes) -> None:
    bundles = ImageBundles(work / "images")
    first = bundles.create(*image(work, "one", [base_layer, layer_of([("file", "one", b"1")])]), "c1", None)
    second = bundles.create(*image(work, "two", [base_layer, layer_of([("file", "two", b"2")])]), "c2", None)
    assert len(os.listdir(bundles.layers.directory)) == 3
    shared = bundles.layers.path(diff_id_of(base_layer)) / "bin" / "busybox"
    inodes = {os.stat(root / "rootfs" / "bin" / "busybox").st_ino for root in (first, second)}
    assert inodes == {os.stat(shared).st_ino}, "both roots show the one unpacked file"
    assert (first / "rootfs" / "one").exists() and not (first / "rootfs" / "two").exists()
    assert bundles.in_use() == {diff_id_of(base_layer), *(diff_id_of(layer) for layer in (
        layer_of([("file", "one", b"1")]), layer_of([("file", "two", b"2")])))}
    for container_id in ("c1", "c2"):
        bundles.remove(container_id)


@pytest.mark.slow
def test_eight_roots_of_a_40_mb_image_add_far_less_than_its_size(work: Path) -> None:
    big = os.urandom(40 * MB)
    layer = layer_of([("dir", "data", None), ("file", "data/big", big)])
    layout, digest = image(work, "layout", [layer])
    bundles = ImageBundles(work / "images")
    bundles.create(layout, digest, "big0", None)
    layer_size = disk_usage(bundles.layers.directory)
    assert layer_size >= 40 * MB
    for n in range(1, 8):
        bundles.create(layout, digest, f"big{n}", None)
    roots = disk_usage(work / "images") - layer_size
    print(f"8 roots of a {layer_size / MB:.1f} MB layer: {roots / 1024:.0f} KiB beyond the layer")
    assert roots < 40 * MB
    assert len(os.listdir(bundles.layers.directory)) == 1
    sample = bundles.containers / "big7" / "rootfs" / "data" / "big"
    assert sample.stat().st_size == len(big) and hashlib.sha256(sample.read_bytes()).digest() == \
        hashlib.sha256(big).digest()
    for n in range(8):
        bundles.remove(f"big{n}")


def victim_state(victims: Path) -> dict[str, tuple[int, int, int, int, bytes]]:
    return {path.name: (path.lstat().st_mode, path.lstat().st_uid, path.lstat().st_mtime_ns, path.lstat().st_nlink,
                        path.read_bytes()) for path in sorted(victims.iterdir())}


def hostile_members(kind: str, victims: Path) -> tuple[str, list[tuple[tarfile.TarInfo, bytes]]]:
    """What the layer is refused for, and its members (a copy of the host's /etc at `victims`)."""
    payload = b"root::0:0::/:/bin/sh\n"
    if kind == "dotdot":
        climb = "../" * 30 + str(victims / "passwd").lstrip("/")
        return "outside the destination", [tar_member(climb, data=payload)]
    if kind == "symlinked-parent":
        return "outside the destination", [tar_member("lnk", tarfile.SYMTYPE, link=str(victims)),
                                           tar_member("lnk/passwd", data=payload, mode=0o4755)]
    if kind == "over-a-symlink":
        return "'lnk' would be extracted to .*, which is outside the destination", [
            tar_member("lnk", tarfile.SYMTYPE, link=str(victims / "passwd")), tar_member("lnk", data=payload)]
    if kind == "hardlink":
        return "not an earlier member of the layer", [
            tar_member("hl", tarfile.LNKTYPE, link=str(victims / "shadow")), tar_member("hl", data=payload)]
    if kind == "hardlink-to-symlink":  # tarfile chmods and chowns a new hard link, following a symlink
        return "which is a symlink", [
            tar_member("s", tarfile.SYMTYPE, link=str(victims / "shadow")),
            tar_member("hl", tarfile.LNKTYPE, link="s", mode=0o4777, uid=1234)]
    # a parent re-pointed after its child's checks: tarfile would then set the child dir's mode through it
    return "'lnk/passwd' goes through the symlink '/lnk'", [
        tar_member("inside", tarfile.DIRTYPE, mode=0o755), tar_member("lnk", tarfile.SYMTYPE, link="inside"),
        tar_member("lnk/passwd", tarfile.DIRTYPE, mode=0o777), tar_member("lnk", tarfile.SYMTYPE, link=str(victims))]


@pytest.mark.parametrize("kind", ["dotdot", "symlinked-parent", "over-a-symlink", "hardlink", "hardlink-to-symlink",
                                  "repointed-parent"])
def test_a_hostile_layer_writes_nothing_outside_its_dir(work: Path, kind: str) -> None:
    victims = work / "etc"
    victims.mkdir()
    for name, mode in (("passwd", 0o644), ("shadow", 0o640)):
        (victims / name).write_text(f"the host's {name}\n")
        (victims / name).chmod(mode)
        os.utime(victims / name, (1_600_000_000, 1_600_000_000))
    complaint, members = hostile_members(kind, victims)
    layer = tar_layer(members)
    layer_blob = blob(work, layer)
    before, work_before = victim_state(victims), sorted(work.rglob("*"))
    store = LayerStore(work / "layers")
    with pytest.raises((ImageError, tarfile.FilterError), match=complaint):
        store.ensure(layer_blob, GZIP, diff_id_of(layer))
    assert victim_state(victims) == before, "the victims are byte-identical: content, mode, owner, mtime, links"
    assert sorted(set(work.rglob("*")) - set(work_before)) == [work / "layers"]
    assert os.listdir(work / "layers") == [], "no layer dir, no scratch dir"


def test_an_absolute_name_is_written_inside_the_layer(work: Path) -> None:
    victim = work / "victim"
    victim.write_text("the host's\n")
    layer = tar_layer([tar_member(str(victim), data=b"planted\n")])
    path = LayerStore(work / "layers").ensure(blob(work, layer), GZIP, diff_id_of(layer))
    assert victim.read_text() == "the host's\n"
    assert (path / str(victim).lstrip("/")).read_text() == "planted\n"


def test_setuid_bits_devices_owners_mtimes_and_xattrs_survive(work: Path) -> None:
    layer = tar_layer([
        tar_member("bin", tarfile.DIRTYPE, mode=0o755),
        tar_member("bin/su", data=b"#!/bin/sh\n", mode=0o4755),
        tar_member("bin/ping", data=b"#!/bin/sh\n", mode=0o755, xattrs={
            "security.capability": CAPABILITY, "user.note": b"kept", "trusted.overlay.redirect": b"/etc"}),
        tar_member("srv", tarfile.DIRTYPE, mode=0o2775, uid=1234, gid=4321),
        tar_member("srv/own", data=b"x", uid=1234, gid=4321),  # uname/gname "root": never looked up
        tar_member("tmp", tarfile.DIRTYPE, mode=0o1777),
        tar_member("dev", tarfile.DIRTYPE, mode=0o755),
        tar_member("dev/null", tarfile.CHRTYPE, mode=0o666, device=(1, 3)),
        tar_member("dev/loop9", tarfile.BLKTYPE, mode=0o660, device=(7, 9)),
        tar_member("dev/fifo", tarfile.FIFOTYPE, mode=0o600),
        tar_member("bin/sh", tarfile.SYMTYPE, link="/bin/busybox"),
        tar_member("bin/su2", tarfile.LNKTYPE, link="bin/su", mode=0o4755)])
    path = LayerStore(work / "layers").ensure(blob(work, layer), GZIP, diff_id_of(layer))
    modes = {name: os.lstat(path / name).st_mode for name in ("bin/su", "srv", "tmp", "dev/null", "dev/loop9",
                                                              "dev/fifo")}
    assert stat.S_IMODE(modes["bin/su"]) == 0o4755 and stat.S_IMODE(modes["srv"]) == 0o2775
    assert stat.S_IMODE(modes["tmp"]) == 0o1777
    assert stat.S_ISCHR(modes["dev/null"]) and os.lstat(path / "dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(modes["dev/loop9"]) and stat.S_ISFIFO(modes["dev/fifo"])
    assert (os.lstat(path / "srv/own").st_uid, os.lstat(path / "srv/own").st_gid) == (1234, 4321)
    assert os.lstat(path / "bin/su").st_mtime == os.lstat(path / "srv").st_mtime == 1_700_000_000
    assert os.readlink(path / "bin/sh") == "/bin/busybox"
    assert os.lstat(path / "bin/su2").st_ino == os.lstat(path / "bin/su").st_ino
    assert os.getxattr(path / "bin/ping", "security.capability") == CAPABILITY
    assert os.getxattr(path / "bin/ping", "user.note") == b"kept"
    assert "trusted.overlay.redirect" not in os.listxattr(path / "bin/ping"), "overlayfs's, not the image's"
    assert stat.S_IMODE(os.lstat(work / "layers").st_mode) == 0o700, "the store is root's alone"


def test_a_wrong_diff_id_or_a_zstd_layer_is_refused_and_leaves_nothing(work: Path, base_layer: bytes) -> None:
    store = LayerStore(work / "layers")
    wrong = diff_id_of(layer_of([("file", "other", b"x")]))
    with pytest.raises(ImageError, match=f"its uncompressed content is {diff_id_of(base_layer)}, not the diff id "
                                         f"{wrong}"):
        store.ensure(blob(work, base_layer), GZIP, wrong)
    with pytest.raises(ImageError, match="zstd-compressed layers are not supported"):
        store.ensure(blob(work, base_layer), "application/vnd.oci.image.layer.v1.tar+zstd", diff_id_of(base_layer))
    plain = gzip.decompress(base_layer)
    with pytest.raises(ImageError, match="Not a gzipped file"):
        store.ensure(blob(work, plain), GZIP, diff_id_of(base_layer))
    assert os.listdir(store.directory) == []
    assert store.ensure(blob(work, plain), "application/vnd.oci.image.layer.v1.tar", diff_id_of(base_layer)) == \
        store.path(diff_id_of(base_layer)), "a plain tar layer"


def test_concurrent_ensures_of_one_layer_end_with_one_dir(work: Path, base_layer: bytes,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = LayerStore(work / "layers")
    both_unpacked = threading.Barrier(2, timeout=30)
    publish = LayerStore._publish

    def publish_together(self: LayerStore, scratch: Path, final: Path) -> None:
        both_unpacked.wait()  # neither renames before both have unpacked: one must find the other's dir
        publish(self, scratch, final)

    monkeypatch.setattr(LayerStore, "_publish", publish_together)
    results: list[Path | BaseException] = []

    def ensure() -> None:
        try:
            results.append(store.ensure(blob(work, base_layer), GZIP, diff_id_of(base_layer)))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [store.path(diff_id_of(base_layer))] * 2
    assert os.listdir(store.directory) == [diff_id_of(base_layer).removeprefix("sha256:")]


def test_roots_survive_a_restart_are_remounted_and_removed_with_their_mounts(work: Path, base_layer: bytes) -> None:
    layout, digest = image(work, "layout", [base_layer], IMAGE_CONFIG)
    bundles = ImageBundles(work / "images")
    bundle = bundles.create(layout, digest, "kept", None)
    rootfs = bundle / "rootfs"
    (rootfs / "srv" / "work" / "written").write_text("by the container")
    unmount(rootfs)  # as a reboot leaves it
    again = ImageBundles(work / "images")  # a daemon started again
    assert again.in_use() == {diff_id_of(base_layer)}
    assert again.layers.collect(again.in_use()) == [], "its layers stay while its bundle does"
    assert again.mount("kept") == bundle and is_mounted(rootfs)
    assert again.mount("kept") == bundle, "mounting a mounted root is nothing"
    assert mounts_under(work) == [str(rootfs)]
    assert (rootfs / "srv" / "work" / "written").read_text() == "by the container"
    assert again.layers.collect(set()) == [], "a mounted root's layers are not collected"
    with pytest.raises(ImageError, match="in use by a container's root filesystem"):
        again.layers.remove(diff_id_of(base_layer))
    with open(rootfs / "srv" / "work" / "written") as held:  # as a process of the container would
        with pytest.raises(ImageError, match=f"cannot unmount {rootfs}: it is still in use"):
            again.remove("kept")
        assert is_mounted(rootfs) and held.read() == "by the container", "a root in use is left whole"
    again.remove("kept")
    assert not is_mounted(rootfs) and mounts_under(work) == [] and not bundle.exists()
    again.remove("kept")  # nothing left: nothing to do
    assert again.layers.collect(again.in_use()) == [diff_id_of(base_layer)]
    assert os.listdir(again.layers.directory) == []


def test_bad_input_is_refused_clearly_and_leaves_nothing(work: Path, base_layer: bytes) -> None:
    bundles = ImageBundles(work / "images")
    layout, digest = image(work, "layout", [base_layer], {"Env": ["A=1"]})
    config_digest = json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text())["config"]
    empty_layout, empty_digest = image(work, "empty", [])
    for container_id, image_digest, args, complaint in [
        ("../up", digest, ["sh"], "'../up' is not a container id"),
        ("c", "sha256:xyz", ["sh"], r"the manifest's digest 'sha256:xyz' is not sha256:<64 hex digits>"),
        ("c", "sha256:" + "0" * 64, ["sh"], f"cannot read the manifest sha256:{'0' * 64}"),
        ("c", config_digest["digest"], ["sh"], "is not an image manifest"),
        ("c", digest, None, "the image has neither Entrypoint nor Cmd"),
    ]:
        with pytest.raises(ImageError, match=complaint):
            bundles.create(layout, image_digest, container_id, args)
    with pytest.raises(ImageError, match="has no layers"):
        bundles.create(empty_layout, empty_digest, "c", ["sh"])
    assert os.listdir(bundles.containers) == [] and mounts_under(work) == []
    bundles.create(layout, digest, "c", ["sh"])
    with pytest.raises(ImageError, match="container c already has an image bundle"):
        bundles.create(layout, digest, "c", ["sh"])
    bundles.remove("c")


def test_what_a_crash_left_half_made_is_swept(work: Path) -> None:
    bundles = ImageBundles(work / "images")
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process has (or had) it
    left = [bundles.containers / f".c1.new-{dead}-abc", bundles.layers.directory / f".unpack-{dead}-abc"]
    running = [bundles.containers / f".c2.new-{os.getpid()}-abc", bundles.layers.directory / f".unpack-{os.getpid()}-x"]
    for directory in left + running:
        (directory / "sub").mkdir(parents=True)
    assert bundles.sweep() == [left[0].name]
    assert bundles.layers.collect(set()) == [], "a scratch dir is no layer"
    assert [path.exists() for path in left + running] == [False, False, True, True], "this process's are in the making"


def test_a_missing_working_dir_is_made_inside_the_root(work: Path, base_layer: bytes) -> None:
    outside = work / "outside"
    outside.mkdir()
    linked = tar_layer([tar_member("lnk", tarfile.SYMTYPE, link=str(outside))])
    bundles = ImageBundles(work / "images")
    layout, digest = image(work, "layout", [base_layer, linked], {"Cmd": ["true"], "WorkingDir": "/lnk/made/here"})
    bundle = bundles.create(layout, digest, "wd", None)
    made = bundle / "rootfs" / str(outside).lstrip("/") / "made" / "here"
    assert made.is_dir() and stat.S_IMODE(made.stat().st_mode) == 0o755
    assert (bundle / "upper" / str(outside).lstrip("/") / "made" / "here").is_dir(), "in the container's upper dir"
    assert os.listdir(outside) == [], "the symlink was resolved inside the image"
    bundles.remove("wd")


@pytest.mark.parametrize("user", [None, "1234:4321", "worker", "worker:staff", "1234", "5000", "root"])
def test_the_spec_is_what_umoci_writes_for_the_same_image(work: Path, base_layer: bytes, user: str | None) -> None:
    groups = layer_of([("dir", "etc", None), ("file", "etc/group", b"root:x:0:\nworkers:x:4321:\n"
                                                                   b"wheel:x:10:root,worker\nstaff:x:50:worker\n")])
    config = {key: value for key, value in IMAGE_CONFIG.items() if key != "User"} | ({"User": user} if user else {})
    layout, digest = image(work, "layout", [base_layer, groups], config)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(work / "umoci")], check=True,
                   capture_output=True)
    theirs = json.loads((work / "umoci" / "config.json").read_text())["process"]
    bundles = ImageBundles(work / "images")
    ours = json.loads((bundles.create(layout, digest, "same", None) / "config.json").read_text())["process"]
    for key in ("args", "cwd", "user"):
        assert ours[key] == theirs[key], key
    assert ours["env"] == [entry for entry in theirs["env"] if entry != "TERM=xterm"], "TERM only with a terminal"
    bundles.remove("same")


def test_a_container_runs_from_an_image_bundle(daemon: Daemon, base_layer: bytes, work: Path) -> None:
    layout, digest = image(work, "layout", [base_layer], IMAGE_CONFIG)
    bundles = ImageBundles(daemon.root_dir / "images")
    bundle = bundles.create(layout, digest, "fromlayers", None)
    try:
        assert is_mounted(bundle / "rootfs")
        daemon.start_container("fromlayers", bundle)
        assert_image_config_honoured(said(daemon, "fromlayers"))
        wait_until(lambda: mounts_under(daemon.state_dir) == [], message="the daemon to let go of the root")
    finally:
        bundles.remove("fromlayers")
    assert mounts_under(daemon.root_dir) == [] and not bundle.exists()
