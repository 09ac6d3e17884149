"""Real images: bundles unpacked from OCI layouts (--from-oci), bundles around an existing rootfs
(--rootfs), actord's image store (images import/list/rm) and containers started from it (--image),
with real umoci, skopeo, actord and runc; the images are built here from the host's busybox."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from actorctl.bundle import create_bundle
from actorctl.client import NotFound
from tests.harness import Daemon, wait_until
from tests.oci_images import IMAGE_CONFIG, docker_archive, layer_of, oci_layout, tar_directory


@pytest.fixture
def layout(work: Path, layer: bytes) -> Path:
    return oci_layout(work / "layout", IMAGE_CONFIG, [layer], tags=("latest", "v1"))


def said(daemon: Daemon, container_id: str) -> dict[str, Any]:
    """Wait for the container's exit; what its process printed (args, env, pwd, uid), and its status."""
    events = daemon.wait_events(lambda found: any(e["type"] == "exit" and e["id"] == container_id for e in found))
    status = next(e["status"] for e in events if e["type"] == "exit" and e["id"] == container_id)
    done = daemon.ctl("containers", "logs", container_id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith(("args:", "pwd:")))
    fields = {key: line.partition(": ")[2] for line in lines for key in ("args", "pwd", "uid")
              if line.startswith(f"{key}: ")}
    return {"status": status, "env": env, **fields}


def assert_image_config_honoured(output: dict[str, Any], args: str = "first second") -> None:
    assert output["status"] == 0
    assert output["args"] == args, "Entrypoint + Cmd (or the given args)"
    assert output["env"]["GREETING"] == "hello from the image"
    assert output["env"]["PATH"] == "/usr/local/bin:/bin"
    assert output["env"]["HOME"] == "/srv", "the User's home, from the image's /etc/passwd"
    assert output["pwd"] == "/srv/work"
    assert output["uid"] == "1234:4321"


def test_from_oci_honours_the_image_config(daemon: Daemon, layout: Path, work: Path) -> None:
    done = daemon.ctl("bundle", "create", "--from-oci", f"{layout}:v1", str(work / "b1"))
    assert done.returncode == 0, done.stderr
    assert f"from {layout}:v1" in done.stdout
    config = json.loads((work / "b1" / "config.json").read_text())
    assert config["process"]["terminal"] is False and config["root"] == {"path": "rootfs", "readonly": False}
    daemon.start_container("img1", work / "b1")
    assert_image_config_honoured(said(daemon, "img1"))


def test_args_replace_the_cmd_and_the_tag_defaults_to_latest(daemon: Daemon, layout: Path, work: Path) -> None:
    done = daemon.ctl("bundle", "create", "--from-oci", str(layout), str(work / "b2"), "--", "one", "two words")
    assert done.returncode == 0, done.stderr
    assert f"from {layout}:latest" in done.stdout
    daemon.start_container("img2", work / "b2", init=True)
    assert_image_config_honoured(said(daemon, "img2"), args="one two words")


def test_an_image_without_a_command_needs_args(daemon: Daemon, work: Path, layer: bytes) -> None:
    bare = oci_layout(work / "bare", {"Env": ["A=1"]}, [layer])
    done = daemon.ctl("bundle", "create", "--from-oci", str(bare), str(work / "b"))
    assert done.returncode == 1 and "neither Entrypoint nor Cmd" in done.stderr
    assert not (work / "b").exists()
    done = daemon.ctl("bundle", "create", "--from-oci", str(bare), str(work / "b"), "--", "sh", "-c", "echo A=$A")
    assert done.returncode == 0, done.stderr
    daemon.start_container("bare", work / "b")
    assert said(daemon, "bare")["env"]["A"] == "1"


def snapshot(tree: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below `tree` (and itself): type, mode, owner, size, mtime, content or link target."""
    found: dict[str, tuple[Any, ...]] = {}
    for path in [tree, *sorted(tree.rglob("*"))]:
        info = path.lstat()
        if path.is_symlink():
            content: str = os.readlink(path)
        elif path.is_file():
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = ""
        found[str(path.relative_to(tree))] = (info.st_mode, info.st_uid, info.st_gid, info.st_size,
                                              info.st_mtime_ns, info.st_ctime_ns, content)
    return found


def test_rootfs_is_left_byte_identical(daemon: Daemon, work: Path) -> None:
    rootfs = create_bundle(work / "source", ["true"]) / "rootfs"
    before = snapshot(rootfs)
    done = daemon.ctl("bundle", "create", "--rootfs", str(rootfs), str(work / "b"), "--",
                      "sh", "-c", "touch /planted 2>&1; echo made > /tmp/scratch && cat /tmp/scratch; ls /")
    assert done.returncode == 0, done.stderr
    assert json.loads((work / "b" / "config.json").read_text())["root"] == {"path": str(rootfs), "readonly": True}
    assert sorted(p.name for p in (work / "b").iterdir()) == ["config.json"]
    daemon.start_container("shared", work / "b")
    events = daemon.wait_events(lambda found: any(e["type"] == "exit" and e["id"] == "shared" for e in found))
    output = daemon.ctl("containers", "logs", "shared").stdout
    assert "made" in output and "Read-only file system" in output, "the container sees its root read-only"
    assert next(e["status"] for e in events if e["type"] == "exit") == 0
    assert snapshot(rootfs) == before


def test_rootfs_without_mount_points_is_refused(daemon: Daemon, work: Path) -> None:
    rootfs = work / "bare-root"
    (rootfs / "bin").mkdir(parents=True)
    before = snapshot(rootfs)
    done = daemon.ctl("bundle", "create", "--rootfs", str(rootfs), str(work / "b"), "--", "/bin/sh")
    assert done.returncode == 1 and f"{rootfs}/proc is not a directory" in done.stderr
    done = daemon.ctl("bundle", "create", "--rootfs", str(rootfs), str(work / "b"))
    assert done.returncode == 1 and "needs the command" in done.stderr
    assert snapshot(rootfs) == before and not (work / "b" / "config.json").exists()


def test_store_import_list_start_rm(daemon: Daemon, layout: Path, work: Path, layer: bytes) -> None:
    store = daemon.root_dir / "images"
    docker = docker_archive(work / "saved.tar", "demo/busybox:v2", IMAGE_CONFIG, [layer])
    done = daemon.ctl("images", "import", str(docker))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["imported demo/busybox:v2"]
    oci_tar = tar_directory(layout, work / "bb.tar")
    done = daemon.ctl("images", "import", "--name", "local/bb", str(oci_tar))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["imported local/bb:latest", "imported local/bb:v1"]
    listed = json.loads(daemon.ctl("images", "list", "--json").stdout)
    assert [(i["name"], i["tag"]) for i in listed] == [("docker.io/demo/busybox", "v2"),
                                                      ("docker.io/local/bb", "latest"), ("docker.io/local/bb", "v1")]
    assert all(i["digest"].startswith("sha256:") and i["size"] > len(layer) // 2 for i in listed)
    assert "demo/busybox  v2" in daemon.ctl("images", "list").stdout

    for container_id, image in (("fromdocker", "demo/busybox:v2"), ("fromoci", "local/bb")):
        done = daemon.ctl("containers", "start", "--image", image, container_id)
        assert done.returncode == 0, done.stderr
        assert_image_config_honoured(said(daemon, container_id))
        # gone with the container (no restart policy): unmounted and removed
        wait_until(lambda: not (daemon.root_dir / "images" / "containers" / container_id).exists())  # noqa: B023
    assert daemon.ctl("containers", "rm", "fromoci").returncode == 1, "nothing left to remove"

    for name in ("demo/busybox:v2", "local/bb", "local/bb:v1"):
        done = daemon.ctl("images", "rm", name)
        assert done.returncode == 0, done.stderr
    assert json.loads(daemon.ctl("images", "list", "--json").stdout) == []
    assert list((store / "oci" / "blobs" / "sha256").iterdir()) == [], "rm collects the unused blobs"
    done = daemon.ctl("images", "rm", "local/bb")
    assert done.returncode == 1 and "no image local/bb:latest in the store" in done.stderr


def test_image_container_under_a_restart_policy_keeps_its_copy(daemon: Daemon, layout: Path, work: Path) -> None:
    assert daemon.ctl("images", "import", "--name", "bb", str(tar_directory(layout, work / "bb.tar"))).returncode == 0
    done = daemon.ctl("containers", "start", "--image", "bb:v1", "--restart", "always", "kept")
    assert done.returncode == 0, done.stderr
    daemon.wait_events(lambda found: sum(e["type"] == "restart" for e in found) >= 1)
    bundle = daemon.root_dir / "images" / "containers" / "kept"
    done = daemon.ctl("containers", "start", "--image", "bb:v1", "kept")
    assert done.returncode == 1 and "already exists" in done.stderr
    assert (bundle / "config.json").exists(), "a refused start leaves the running container's copy alone"
    done = daemon.ctl("containers", "kill", "--signal", "KILL", "kept")
    assert done.returncode in (0, 1), done.stderr  # between two runs there may be nothing to kill
    done = daemon.ctl("containers", "rm", "kept")
    while done.returncode != 0 and "kill it first" in done.stderr:  # it was restarted meanwhile
        daemon.ctl("containers", "kill", "--signal", "KILL", "kept")
        done = daemon.ctl("containers", "rm", "kept")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not bundle.exists())


def test_concurrent_imports_all_land(daemon: Daemon, layout: Path, work: Path, layer: bytes) -> None:
    archives = [docker_archive(work / f"d{n}.tar", f"many/d{n}:latest", {**IMAGE_CONFIG, "Env": [f"N={n}"]},
                               [layer]) for n in range(3)]
    env = dict(os.environ, ACTORD_ADDRESS=daemon.address)
    runs = [subprocess.Popen([str(Path(sys.executable).parent / "actorctl"), "images", "import", str(a)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for a in archives]
    for run in runs:
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    listed = json.loads(daemon.ctl("images", "list", "--json").stdout)
    assert [i["name"] for i in listed] == ["docker.io/many/d0", "docker.io/many/d1", "docker.io/many/d2"]
    subprocess.run(["umoci", "stat", "--image", f"{daemon.root_dir}/images/oci:docker.io/many/d1:latest"], check=True,
                   capture_output=True)


def test_bad_input_is_refused_clearly(daemon: Daemon, layout: Path, work: Path) -> None:
    def refused(*args: str) -> str:
        done = daemon.ctl(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        return done.stderr

    assert "no such OCI layout directory" in refused("bundle", "create", "--from-oci", str(work / "nope"),
                                                     str(work / "b"))
    assert "has no image tagged 'v9' (it has: latest, v1)" in refused(
        "bundle", "create", "--from-oci", f"{layout}:v9", str(work / "b"))
    assert "is not an OCI image layout" in refused("bundle", "create", "--from-oci", str(work), str(work / "b"))
    (work / "full").mkdir()
    (work / "full" / "x").write_text("")
    assert "is not an empty directory" in refused("bundle", "create", "--from-oci", str(layout), str(work / "full"))
    assert not (work / "b").exists() and sorted(p.name for p in work.iterdir()) == ["full", "layout"]

    junk = work / "junk.tar"
    with tarfile.open(junk, "w") as tar:
        tar.add(layout / "oci-layout", arcname="hello.txt")
    assert "neither an OCI layout tarball" in refused("images", "import", str(junk))
    (work / "text.tar").write_text("not a tar at all\n")
    assert "not a tar archive" in refused("images", "import", str(work / "text.tar"))
    (work / "junk.json").write_text("{not json")
    damaged = work / "damaged.tar"
    with tarfile.open(damaged, "w") as tar:
        tar.add(work / "junk.json", arcname="manifest.json")
    assert "manifest.json is not JSON" in refused("images", "import", str(damaged))
    with tarfile.open(damaged, "w") as tar:
        tar.add(layout / "oci-layout", arcname="manifest.json")
    assert "manifest.json names no image" in refused("images", "import", str(damaged))
    assert "no image missing:latest in the store" in refused("containers", "start", "--image", "missing", "c1")
    assert "repository name (Bad) must be lowercase" in refused("containers", "start", "--image", "Bad:Name", "c1")
    assert not (daemon.root_dir / "images" / "containers" / "c1").exists()
    assert daemon.ctl("containers", "start", "c1").returncode == 2, "neither BUNDLE nor --image"
    assert daemon.ctl("images", "list", "--json").stdout.strip() == "[]"


def test_a_start_actord_refuses_leaves_no_copy(daemon: Daemon, layout: Path, work: Path) -> None:
    assert daemon.ctl("images", "import", "--name", "bb", str(tar_directory(layout, work / "bb.tar"))).returncode == 0
    done = daemon.ctl("containers", "start", "--image", "bb", "--checkpoint", "nosuch", "c2")
    assert done.returncode == 1, done.stdout
    assert not (daemon.root_dir / "images" / "containers" / "c2").exists()


def test_escaping_layer_entries_stay_inside_the_bundle(daemon: Daemon, work: Path, layer: bytes) -> None:
    outside = work / "outside"
    outside.mkdir()
    evil = layer_of([("file", "../../escaped", b"x"), ("symlink", "abs", str(outside)),
                     ("file", "abs/planted", b"y"), ("symlink", "rel", "../../../../../../" + str(outside)),
                     ("file", "rel/planted2", b"z")])
    bad = oci_layout(work / "evil", IMAGE_CONFIG, [layer, evil])
    before = {str(p) for p in work.rglob("*")}
    done = daemon.ctl("bundle", "create", "--from-oci", str(bad), str(work / "nest" / "b"))
    assert done.returncode == 0, done.stderr
    made = {str(p) for p in work.rglob("*")} - before
    assert all(path.startswith(f"{work}/nest/b") or path == f"{work}/nest" for path in made), made - before
    assert list(outside.iterdir()) == [] and not Path("/escaped").exists() and not (work / "escaped").exists()
    rootfs = work / "nest" / "b" / "rootfs"
    assert (rootfs / "escaped").read_text() == "x"
    assert (rootfs / str(outside).lstrip("/") / "planted").read_text() == "y"
    daemon.start_container("evil", work / "nest" / "b")
    assert said(daemon, "evil")["status"] == 0


def test_the_client_library_goes_from_an_archive_to_a_waited_on_logged_container(daemon: Daemon, work: Path,
                                                                                   layer: bytes) -> None:
    archive = docker_archive(work / "lib.tar", "lib/busybox:v1", IMAGE_CONFIG, [layer])
    with daemon.client() as client:
        assert client.import_image(str(archive)) == ["docker.io/lib/busybox:v1"]
        assert [(i.name, i.tag) for i in client.images()] == [("docker.io/lib/busybox", "v1")]
        started = client.start("fromlib", image="lib/busybox:v1")
        assert started.bundle == str(daemon.root_dir / "images" / "containers" / "fromlib")
        assert client.wait("fromlib", timeout=30).status == 0
        printed = b"".join(record.data for record in client.logs("fromlib")).decode()
        assert "args: first second" in printed and "pwd: /srv/work" in printed and "uid: 1234:4321" in printed
        with pytest.raises(NotFound) as unknown:
            client.start("other", image="lib/busybox:v9")
        assert "no image lib/busybox:v9 in the store" in str(unknown.value)
        assert not (daemon.root_dir / "images" / "containers" / "other").exists()
        # the daemon forgot it at its exit, and its bundle with it
        wait_until(lambda: not (daemon.root_dir / "images" / "containers" / "fromlib").exists())
