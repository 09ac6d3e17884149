"""actord's image service end to end: a remote client over tcp with CURVE imports (streamed
through the API) and pulls images and runs containers of them; a `docker save` archive runs by
its familiar name; containers of images survive a daemon SIGKILL and a reboot, and are removed
without a mount left; bad import input is refused clearly and leaves nothing."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from actorctl.client import Client, ImageFailure, NotFound
from tests.harness import (
    Certificates,
    Daemon,
    checked_daemon,
    free_port,
    mounts_under,
    new_state_dir,
    pid_alive,
    remove_state_dir,
    wait_until,
)
from tests.oci_images import IMAGE_CONFIG, SLEEPING, docker_archive
from tests.registry import Registry, registries_conf


def image_roots_gone(daemon: Daemon) -> None:
    wait_until(lambda: not list((daemon.root_dir / "images" / "containers").iterdir()), 15,
               message="the containers' image bundles to go")
    assert mounts_under(daemon.root_dir) == [], "no overlay left mounted"


def test_a_remote_client_over_curve_imports_pulls_and_runs_image_containers(
        request: pytest.FixtureRequest, registry: Registry, certificates: Certificates, work: Path,
        layer: bytes) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    conf = registries_conf(work / "registries.conf", insecure=(registry.address,))
    state_dir = new_state_dir()
    daemon = Daemon(state_dir, ["--listen", address, "--curve-secret-key", str(certificates.server[1]),
                                "--curve-authorized-keys", str(certificates.authorized),
                                "--registries-conf", str(conf)])
    daemon.client = lambda timeout=10.0: Client(  # type: ignore[method-assign]
        address, timeout, curve_server_key=certificates.server[0], curve_client_key=certificates.client[1])
    archive = docker_archive(work / "saved.tar", "dimg:v1", IMAGE_CONFIG, [layer])
    try:
        with checked_daemon(daemon, request), daemon.client(timeout=60) as remote:
            assert remote.import_image(archive) == ["docker.io/library/dimg:v1"], "streamed over tcp"
            assert not list((daemon.root_dir / "images").glob("import-*")), "the upload is gone once imported"
            remote.start("saved", image="dimg:v1", args=["by", "its", "familiar", "name"])
            assert remote.wait("saved", timeout=30).status == 0
            printed = b"".join(record.data for record in remote.logs("saved")).decode()
            assert "args: by its familiar name" in printed and "GREETING=hello from the image" in printed
            seen: list[dict[str, object]] = []
            pulled = remote.pull(f"{registry.address}/team/bb:v1", progress=seen.append)
            assert seen == [], "the event socket is local: no progress over tcp, and no wait for it"
            remote.start("pulled", image=pulled.id)
            assert remote.wait("pulled", timeout=30).status == 0
            assert "args: first second" in b"".join(r.data for r in remote.logs("pulled")).decode()
            image_roots_gone(daemon)
            with pytest.raises(NotFound, match="no image dimg:v2 in the store"):
                remote.start("nothing", image="dimg:v2")
            assert [(i.name, i.tag) for i in remote.images()] == [
                (f"{registry.address}/team/bb", "v1"), ("docker.io/library/dimg", "v1")]
    finally:
        remove_state_dir(state_dir)


def test_an_import_by_path_and_bad_imports_refused_leaving_nothing(daemon: Daemon, work: Path,
                                                                   layer: bytes) -> None:
    (work / "text.tar").write_text("not a tar at all\n")
    with daemon.client() as client:
        saved = docker_archive(work / "bypath.tar", "bypath:v1", IMAGE_CONFIG, [layer])
        assert client.call("images.import", {"path": str(saved)}) == {"imported": ["docker.io/library/bypath:v1"]}
        client.remove_image("bypath:v1")
        with pytest.raises(ImageFailure, match="not a tar archive"):
            client.import_image(work / "text.tar")
        with pytest.raises(ImageFailure, match="an image name is wanted here"):
            client.import_image(docker_archive(work / "d.tar", "dimg:v1", IMAGE_CONFIG, [layer]), name="x:v1")
        with pytest.raises(NotFound, match="no upload nosuch under way"):
            client.call("images.import_chunk", {"upload": "nosuch", "offset": 0, "data": b"x"})
        upload = client.call("images.import_begin")["upload"]
        client.call("images.import_chunk", {"upload": upload, "offset": 0, "data": b"x" * 1000})
        with pytest.raises(ImageFailure, match="at offset 5, but 1000 bytes came so far"):
            client.call("images.import_chunk", {"upload": upload, "offset": 5, "data": b"x"})
        client.call("images.import_cancel", {"upload": upload})
        done = daemon.ctl("images", "import", "/etc/hostname")
        assert done.returncode == 1 and "neither an OCI layout tarball" in done.stderr, done.stderr
        with pytest.raises(ImageFailure, match="must be absolute"):
            client.call("images.import", {"path": "relative.tar"})
    assert not list((daemon.root_dir / "images").glob("import-*"))
    assert daemon.ctl("images", "list", "--json").stdout.strip() == "[]"


@pytest.mark.slow
def test_image_containers_survive_a_daemon_kill_and_a_reboot(daemon: Daemon, work: Path, layer: bytes) -> None:
    with daemon.client(timeout=60) as client:
        client.import_image(docker_archive(work / "sleeping.tar", "sleeper:v1", SLEEPING, [layer]))
        client.start("plain", image="sleeper:v1")
        client.start("always", image="sleeper:v1", restart="always")
    roots = {name: daemon.root_dir / "images" / "containers" / name / "rootfs" for name in ("plain", "always")}
    pids = {c["id"]: c["processes"][0]["system_pid"] for c in daemon.call("containers.list")}

    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    daemon.start()
    assert {c["id"]: c["status"] for c in daemon.call("containers.list")} == {"plain": "running",
                                                                              "always": "running"}
    assert all(pid_alive(pid) for pid in pids.values()) and all(str(r) in mounts_under(r) for r in roots.values())
    done = daemon.ctl("containers", "rm", "--force", "plain")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: not roots["plain"].parent.exists(), message="plain's bundle to go")
    assert mounts_under(roots["plain"].parent) == []

    # a reboot: the daemon stops, every container and shim dies, every mount goes, /run is wiped
    shims = {p["shim_pid"] for c in daemon.call("containers.list") for p in c["processes"]}
    assert daemon.stop() == 0
    daemon.kill_everything()
    wait_until(lambda: not any(pid_alive(pid) for pid in shims), 10, 0.05, "the shims gone")
    for point in sorted(mounts_under(daemon.state_dir) + mounts_under(daemon.root_dir), reverse=True):
        subprocess.run(["umount", "-l", point], check=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(daemon.state_dir)], check=True)
    daemon.start()
    wait_until(lambda: [(c["id"], c["status"]) for c in daemon.call("containers.list")] == [("always", "running")],
               15, 0.05, "the always container back")
    assert str(roots["always"]) in mounts_under(roots["always"]), "its root mounted again"
    done = daemon.ctl("containers", "exec", "--attach", "always", "--", "cat", "/etc/passwd")
    assert done.returncode == 0 and "root:" in done.stdout, done.stderr
    done = daemon.ctl("containers", "rm", "--force", "always")
    assert done.returncode == 0, done.stderr
    image_roots_gone(daemon)


def test_a_bundle_no_container_owns_is_removed_when_actord_starts(daemon: Daemon, work: Path, layer: bytes) -> None:
    with daemon.client(timeout=60) as client:
        client.import_image(docker_archive(work / "sleeping.tar", "sleeper:v1", SLEEPING, [layer]))
        client.start("kept", image="sleeper:v1")
    assert daemon.stop() == 0
    bundles = daemon.root_dir / "images" / "containers"
    (bundles / "ghost").mkdir()  # as a daemon that died between making a bundle and starting it leaves one
    (bundles / "ghost" / "config.json").write_text("{}")
    daemon.start()
    wait_until(lambda: not (bundles / "ghost").exists(), message="the ownerless bundle to go")
    assert (bundles / "kept" / "rootfs" / "bin").is_dir(), "a running container's bundle stays"
    daemon.ctl("containers", "rm", "--force", "kept")
    image_roots_gone(daemon)
