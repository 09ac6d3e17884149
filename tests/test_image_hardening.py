"""What an image's author could do to the host through actorctl, tried as an attacker would
(issue #16), with real skopeo, umoci, actord and runc: archives that write outside the store,
labels that reach runc and CRIU, bundles other users can read, rootfs trees too deep to delete."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Daemon, wait_until
from tests.oci_images import IMAGE_CONFIG, SLEEPING, add_members, docker_archive, oci_layout, tar_directory

VICTIM_MTIME = 1_600_000_000
SETUID_PAYLOAD = b"#!/bin/sh\necho owned\n"
LABELS = {"org.criu.config": "/tmp/x", "org.systemd.property.x": "y", "org.opencontainers.image.title": "t",
          "com.example": "z"}
DEPTH = 1100
"""Deeper than Python's recursion limit (1000), which shutil.rmtree hit."""
"""An image whose container runs until it is killed: its bundle is there to look at."""



def exited(daemon: Daemon, container_id: str, after: int = 0) -> int:
    """The status of the container's init, once it has exited (an exit recorded after event `after`)."""
    def exit_status() -> list[int]:
        return [e["status"] for e in daemon.events(after, container_id) if e["type"] == "exit"]

    statuses: list[int] = wait_until(exit_status, 30, message=f"{container_id} to exit")
    return statuses[0]


def last_seq(daemon: Daemon) -> int:
    events = daemon.events()
    return int(events[-1]["seq"]) if events else 0


def _content(path: Path) -> bytes:
    if path.is_symlink():
        return os.readlink(path).encode()
    return path.read_bytes() if path.is_file() else b""


def tree_state(top: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry at and below `top`: mode, size, mtime and content (a link's target)."""
    found = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        found[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, _content(path))
    return found


def member(name: str, kind: bytes, *, link: str = "", data: bytes = b"", mode: int = 0o644) -> tuple[
        tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, 1_700_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    return info, data


def attack(kind: str, victims: Path) -> tuple[str, list[tuple[tarfile.TarInfo, bytes]]]:
    """The member an archive is refused for, and the members of the attack that begins with it."""
    victim = victims / "victim"
    if kind == "symlink":
        return "lnk", [member("lnk", tarfile.SYMTYPE, link=str(victims)),
                       member("lnk/victim", tarfile.REGTYPE, data=SETUID_PAYLOAD, mode=0o4755)]
    if kind == "hardlink":
        return "hl", [member("hl", tarfile.LNKTYPE, link=str(victim)),
                      member("hl", tarfile.REGTYPE, data=SETUID_PAYLOAD, mode=0o4755)]
    if kind == "device":
        return "null", [member("null", tarfile.CHRTYPE, mode=0o666)]
    climb = "../" * 24 + str(victim).lstrip("/")
    return climb, [member(climb, tarfile.REGTYPE, data=SETUID_PAYLOAD, mode=0o4755)]


@pytest.mark.parametrize("archive_kind", ["oci", "docker"])
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "dotdot"])
def test_an_archive_that_reaches_outside_the_store_is_refused_before_anything_unpacks_it(
        daemon: Daemon, work: Path, layer: bytes, archive_kind: str, kind: str) -> None:
    victims = work / "victims"
    victims.mkdir()
    victim = victims / "victim"
    victim.write_text("the host's own file\n")
    victim.chmod(0o644)
    os.utime(victim, (VICTIM_MTIME, VICTIM_MTIME))
    if archive_kind == "oci":
        archive = tar_directory(oci_layout(work / "layout", IMAGE_CONFIG, [layer]), work / "image.tar")
    else:
        archive = docker_archive(work / "image.tar", "evil/image:v1", IMAGE_CONFIG, [layer])
    refused_member, members = attack(kind, victims)
    add_members(archive, members)
    before, work_before = tree_state(victims), sorted(work.rglob("*"))
    root_before = sorted(daemon.root_dir.rglob("*"))

    done = daemon.ctl("images", "import", "--name", "evil", str(archive))

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert f"member {refused_member!r} is " in done.stderr or f"member {refused_member!r} has " in done.stderr, \
        done.stderr
    assert tree_state(victims) == before, "the victim is byte-identical: content, mode, mtime"
    assert sorted(work.rglob("*")) == work_before, "nothing new outside the store"
    made = sorted(set(daemon.root_dir.rglob("*")) - set(root_before))
    assert all(path.is_relative_to(daemon.root_dir / "images") for path in made), made
    assert not list((daemon.root_dir / "images").glob("import-*")), "the private copy is gone"
    assert json.loads(daemon.ctl("images", "list", "--json").stdout) == []


def annotations_of(bundle: Path) -> dict[str, Any]:
    annotations: dict[str, Any] = json.loads((bundle / "config.json").read_text()).get("annotations", {})
    return annotations


def assert_only_oci_annotations(annotations: dict[str, Any]) -> None:
    assert annotations["org.opencontainers.image.title"] == "t"
    assert sorted(key for key in annotations if not key.startswith("org.opencontainers.image.")) == [], annotations


def test_image_labels_reach_the_spec_only_as_oci_annotations(daemon: Daemon, work: Path, layer: bytes) -> None:
    layout = oci_layout(work / "labelled", {**SLEEPING, "Labels": LABELS}, [layer])
    done = daemon.ctl("bundle", "create", "--from-oci", str(layout), str(work / "b"))
    assert done.returncode == 0, done.stderr
    assert_only_oci_annotations(annotations_of(work / "b"))

    assert daemon.ctl("images", "import", "--name", "lab", str(tar_directory(layout, work / "l.tar"))).returncode == 0
    done = daemon.ctl("containers", "start", "--image", "lab", "viactl")
    assert done.returncode == 0, done.stderr
    assert_only_oci_annotations(annotations_of(daemon.root_dir / "images" / "containers" / "viactl"))
    with daemon.client() as client:
        started = client.start("vialib", image="lab")
        assert_only_oci_annotations(annotations_of(Path(started.bundle)))
        for container_id in ("viactl", "vialib"):
            client.remove(container_id, force=True)
    wait_until(lambda: not list((daemon.root_dir / "images" / "containers").iterdir()))


def test_bundles_from_images_are_roots_alone(daemon: Daemon, work: Path, layer: bytes) -> None:
    layout = oci_layout(work / "layout", IMAGE_CONFIG, [layer])
    bundle = work / "b"
    bundle.mkdir(mode=0o755)  # an empty directory given: the bundle replaces it
    assert daemon.ctl("bundle", "create", "--from-oci", str(layout), str(bundle)).returncode == 0
    assert bundle.stat().st_mode & 0o7777 == 0o700
    assert (bundle / "rootfs").stat().st_mode & 0o7777 == 0o755, "umoci's modes inside are kept"
    daemon.start_container("fromoci", bundle)
    assert exited(daemon, "fromoci") == 0, "the image's user (1234) runs from it"

    sleeping = oci_layout(work / "sleeping", SLEEPING, [layer])
    assert daemon.ctl("images", "import", "--name", "bb", str(tar_directory(sleeping, work / "bb.tar"))).returncode == 0
    assert daemon.ctl("containers", "start", "--image", "bb", "fromstore").returncode == 0
    assert (daemon.root_dir / "images" / "containers" / "fromstore").stat().st_mode & 0o7777 == 0o700
    assert daemon.ctl("containers", "rm", "--force", "fromstore").returncode == 0
    wait_until(lambda: not (daemon.root_dir / "images" / "containers" / "fromstore").exists())


@pytest.mark.slow
def test_a_container_with_a_deeper_tree_than_the_recursion_limit_is_removed(daemon: Daemon, work: Path,
                                                                             layer: bytes) -> None:
    builder = {"Cmd": ["/bin/sh", "-c", f'i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || exit 1; '
                                        f'i=$((i + 1)); done; echo bottom > leaf']}
    layout = oci_layout(work / "deep", builder, [layer])
    assert daemon.ctl("images", "import", "--name", "deep", str(tar_directory(layout, work / "d.tar"))).returncode == 0
    bundle = daemon.root_dir / "images" / "containers" / "deep"
    for attempt in range(2):
        after = last_seq(daemon)
        done = daemon.ctl("containers", "start", "--image", "deep", "deep")
        assert done.returncode == 0, (attempt, done.stderr)
        assert exited(daemon, "deep", after) == 0
        # gone with the container (no restart policy), its deep upper dir too
        wait_until(lambda: not os.path.lexists(bundle), 30)
        assert "cannot remove the image bundle" not in daemon.log()
        daemon.call("events.replay", {"after": 0})  # the daemon still serves


def test_a_mount_point_in_an_image_bundle_is_left_and_named(daemon: Daemon, work: Path, layer: bytes) -> None:
    layout = oci_layout(work / "layout", SLEEPING, [layer])
    assert daemon.ctl("images", "import", "--name", "bb", str(tar_directory(layout, work / "bb.tar"))).returncode == 0
    assert daemon.ctl("containers", "start", "--image", "bb", "mounted").returncode == 0
    mount_point = daemon.root_dir / "images" / "containers" / "mounted" / "rootfs" / "tmp"
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(mount_point)], check=True)
    try:
        (mount_point / "elsewhere").write_text("not the bundle's")
        done = daemon.ctl("containers", "rm", "--force", "mounted")
        assert done.returncode == 0, (done.stdout, done.stderr)
        wait_until(lambda: "cannot remove the image bundle of container mounted" in daemon.log())
        assert "a mount below it" in daemon.log()
        assert (mount_point / "elsewhere").read_text() == "not the bundle's"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    # a later start of the id replaces what was left, and goes with its container
    assert daemon.ctl("containers", "start", "--image", "bb", "mounted").returncode == 0
    assert daemon.ctl("containers", "rm", "--force", "mounted").returncode == 0
    wait_until(lambda: not os.path.lexists(daemon.root_dir / "images" / "containers" / "mounted"))
