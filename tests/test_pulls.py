"""Pulls through actord from a real registry on 127.0.0.1 (Debian's docker-registry, plain HTTP,
made insecure by the registries.conf actord is given): by tag and by digest, through a mirror,
by a short name the search registries complete; a wrong digest and a registry answering
nonsense; two pulls sharing one download; images in use; prune; progress events."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actorctl.client import Conflict, ImageFailure
from tests.harness import (
    Daemon,
    checked_daemon,
    mounts_under,
    new_state_dir,
    pid_alive,
    process_table,
    remove_state_dir,
    wait_until,
)
from tests.oci_images import IMAGE_CONFIG, busybox_layer, diff_id_of, layer_of, oci_layout
from tests.registry import BlobGate, GarbageRegistry, Registry, registries_conf

MB = 1 << 20
MIRRORED = "mirror.invalid"
"""A registry that does not exist: pulls of its names go to its mirror, the test registry."""


@pytest.fixture
def start_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start actord with a registries.conf of these insecure registries (and search list, mirrors)."""
    stack: list[Any] = []

    def start(*, insecure: tuple[str, ...], search: tuple[str, ...] = (),
              mirrors: dict[str, str] | None = None, auth_file: Path | None = None) -> Daemon:
        conf = registries_conf(tmp_path / "registries.conf", insecure=insecure, search=search, mirrors=mirrors)
        state_dir = new_state_dir()
        extra = ["--registries-conf", str(conf)] + ([] if auth_file is None else ["--auth-file", str(auth_file)])
        context = checked_daemon(Daemon(state_dir, extra_args=extra), request)
        stack.append((context, state_dir))
        return context.__enter__()

    yield start
    for context, state_dir in stack:
        try:
            context.__exit__(None, None, None)
        finally:
            remove_state_dir(state_dir)


def listed(daemon: Daemon) -> list[dict[str, Any]]:
    done = daemon.ctl("images", "list", "--json")
    assert done.returncode == 0, done.stderr
    images: list[dict[str, Any]] = json.loads(done.stdout)
    return images


def output_of(daemon: Daemon, container_id: str) -> str:
    with daemon.client() as client:
        assert client.wait(container_id, timeout=30).status == 0
        return b"".join(record.data for record in client.logs(container_id)).decode()


def nothing_left(daemon: Daemon) -> None:
    """No pull's scratch, no container's bundle or mount under the root."""
    images = daemon.root_dir / "images"
    assert not list(images.glob("stage-*")) and not list(images.glob("import-*"))
    wait_until(lambda: not list((images / "containers").iterdir()), message="image bundles to go")
    assert mounts_under(daemon.root_dir) == []


def test_pull_by_tag_and_by_digest_run_and_prune(registry: Registry, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(insecure=(registry.address,))
    fetched = registry.fetches(r"/v2/team/bb/manifests/v1")  # the registry serves the whole session
    done = daemon.ctl("images", "pull", f"{registry.address}/team/bb:v1")
    assert done.returncode == 0, done.stderr
    [image] = listed(daemon)
    assert (image["name"], image["tag"]) == (f"{registry.address}/team/bb", "v1")
    assert f"Digest: {image['digest']}" in done.stdout, "the manifest digest is shown"
    assert image["id"].startswith("sha256:") and image["size"] > 100_000
    assert registry.fetches(r"/v2/team/bb/manifests/v1") == fetched + 1

    by_digest = f"{registry.address}/team/bb@{image['digest']}"
    done = daemon.ctl("images", "pull", "--json", by_digest)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == image["digest"]
    assert sorted((i["tag"] or "") for i in listed(daemon)) == ["", "v1"], "a digest pull has no tag"

    done = daemon.ctl("containers", "start", "--image", by_digest, "bydigest", "--", "from", "digest")
    assert done.returncode == 0, done.stderr
    printed = output_of(daemon, "bydigest")
    assert "args: from digest" in printed and "uid: 1234:4321" in printed and "pwd: /srv/work" in printed

    nothing_left(daemon)  # the container exited without a policy: its bundle went with it
    done = daemon.ctl("images", "prune", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"] == [by_digest], "the untagged image goes, the tagged one stays"
    assert [(i["tag"]) for i in listed(daemon)] == ["v1"]


def test_a_mirror_and_a_short_name(registry: Registry, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(insecure=(registry.address,), search=(registry.address,),
                          mirrors={MIRRORED: registry.address})
    with daemon.client(timeout=60) as client:
        mirrored = client.pull(f"{MIRRORED}/team/bb:v1")
        assert mirrored.name == f"{MIRRORED}/team/bb", "stored under the name asked for"
        short = client.pull("bb:v1")
        assert short.name == f"{registry.address}/bb", "a short name is stored under the registry that had it"
        assert short.digest == mirrored.digest
        started = client.start("short", image="bb:v1", args=["short", "name"])
        assert started.bundle == str(daemon.root_dir / "images" / "containers" / "short")
    assert "args: short name" in output_of(daemon, "short")
    nothing_left(daemon)


def test_a_wrong_digest_and_a_garbage_registry_leave_nothing(registry: Registry,
                                                             start_daemon: Callable[..., Daemon]) -> None:
    garbage = GarbageRegistry()
    try:
        daemon = start_daemon(insecure=(registry.address, garbage.address))
        blobs = daemon.root_dir / "images" / "oci" / "blobs" / "sha256"
        wrong = f"{registry.address}/team/bb@sha256:{'0' * 64}"
        done = daemon.ctl("images", "pull", wrong)
        assert done.returncode == 1, done.stdout
        assert f"cannot pull {wrong}" in done.stderr and "manifest unknown" in done.stderr, done.stderr
        done = daemon.ctl("images", "pull", f"{garbage.address}/team/bb:v1")
        assert done.returncode == 1, done.stdout
        assert f"cannot pull {garbage.address}/team/bb:v1" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.splitlines()[-1].startswith("Error: cannot pull")
        with daemon.client() as client, pytest.raises(ImageFailure):
            client.pull(f"{garbage.address}/other:v1")
        assert listed(daemon) == [] and (not blobs.exists() or list(blobs.iterdir()) == [])
        nothing_left(daemon)
        assert daemon.ctl("images", "pull", f"{registry.address}/team/bb:v1").returncode == 0, "still serving"
    finally:
        garbage.stop()


def test_two_pulls_of_one_image_share_one_download_and_the_store_answers_meanwhile(registry: Registry,
                                                   start_daemon: Callable[..., Daemon]) -> None:
    gate = BlobGate(registry)
    try:
        daemon = start_daemon(insecure=(gate.address,))
        ref = f"{gate.address}/team/bb:v1"
        seen: list[list[dict[str, Any]]] = [[], []]
        results: list[Any] = [None, None]

        def pull(n: int) -> None:
            with daemon.client(timeout=60) as client:
                results[n] = client.pull(ref, progress=seen[n].append)

        first = threading.Thread(target=pull, args=(0,))
        first.start()
        assert gate.blob_asked.wait(30), "the first pull reached the blobs"
        second = threading.Thread(target=pull, args=(1,))
        second.start()
        wait_until(lambda: any(e["stage"] == "waiting for the pull under way" for e in seen[1]), 30,
                   message="the second pull to join the first")
        assert daemon.call("images.list", timeout=5) == [], "the store answers while a pull downloads"
        gate.release()
        for thread in (first, second):
            thread.join(60)
        assert results[0] is not None and results[0] == results[1]
        assert gate.count("/manifests/") == 1, gate.gets
        assert gate.count("/blobs/") == 2, gate.gets  # config and layer, once each
        stages = [e["stage"] for e in seen[0]]
        assert stages[0] == "resolving" and "copying blob" in stages and "writing manifest" in stages, stages
        assert all(e["ref"] == f"{gate.address}/team/bb:v1" for e in seen[0] + seen[1])
    finally:
        gate.stop()


def test_a_stop_during_a_pull_ends_the_pull_and_the_daemon(registry: Registry,
                                                          start_daemon: Callable[..., Daemon]) -> None:
    """A registry that never sends the blob held the daemon's exit: its pool thread waited on
    skopeo, and the interpreter's exit on the thread. The stop kills skopeo and the daemon ends."""
    gate = BlobGate(registry)
    try:
        daemon = start_daemon(insecure=(gate.address,))
        failures: list[BaseException] = []

        def pull() -> None:
            try:
                with daemon.client(timeout=60) as client:
                    client.pull(f"{gate.address}/team/bb:v1")
            except BaseException as exc:  # the daemon stops under it: an error, never a hang
                failures.append(exc)

        puller = threading.Thread(target=pull)
        puller.start()
        assert gate.blob_asked.wait(30), "the pull reached the blobs"
        assert daemon.process is not None
        skopeo = [proc["pid"] for proc in process_table() if proc["cmdline"].startswith("skopeo ")
                  and proc["ppid"] == daemon.process.pid]
        assert skopeo, "the pull's skopeo runs"
        assert daemon.stop() == 0, "actord ended with the pull still held"
        puller.join(60)
        assert not puller.is_alive() and failures, "the client heard of the stop"
        assert "actord is stopping" in str(failures[0]), failures
        assert not any(pid_alive(pid) for pid in skopeo), "no skopeo left"
        assert not list((daemon.root_dir / "images").glob("stage-*")), "no pull's scratch left"
    finally:
        gate.release()
        gate.stop()


def test_an_image_in_use_is_not_removed(registry: Registry, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(insecure=(registry.address,))
    ref = f"{registry.address}/team/sleeper:v1"
    with daemon.client(timeout=60) as client:
        image = client.pull(ref)
        client.start("busy", image=ref)
        with pytest.raises(Conflict, match="used by container"):
            client.remove_image(ref)
        done = daemon.ctl("images", "rm", image.id.removeprefix("sha256:")[:12])
        assert done.returncode == 1 and "is used by container(s) busy" in done.stderr, done.stderr
        assert client.inspect_image(ref)["containers"] == ["busy"]
        client.remove("busy", force=True)
    nothing_left(daemon)
    done = daemon.ctl("images", "rm", ref)
    assert done.returncode == 0, done.stderr
    assert listed(daemon) == []
    assert list((daemon.root_dir / "images" / "layers").iterdir()) == [], "its layer went with it"


def test_credentials_come_from_the_auth_file(tmp_path: Path, start_daemon: Callable[..., Daemon]) -> None:
    private = Registry(user=("puller", "s3cret"))
    try:
        layout = oci_layout(tmp_path / "layout", IMAGE_CONFIG, [busybox_layer()], tags=("v1",))
        private.push(layout, "v1", "team/private:v1")
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"auths": {private.address: {
            "auth": base64.b64encode(b"puller:s3cret").decode()}}}))
        without = start_daemon(insecure=(private.address,))
        done = without.ctl("images", "pull", f"{private.address}/team/private:v1")
        assert done.returncode == 1 and "unauthorized" in done.stderr.lower(), done.stderr
        with_auth = start_daemon(insecure=(private.address,), auth_file=auth)
        done = with_auth.ctl("images", "pull", f"{private.address}/team/private:v1")
        assert done.returncode == 0, done.stderr
        assert [i["name"] for i in listed(with_auth)] == [f"{private.address}/team/private"]
    finally:
        private.stop()


def multi_platform_layout(path: Path) -> tuple[Path, dict[str, str]]:
    """A layout whose tag `v1` is an image index of an amd64 image (busybox, IMAGE_CONFIG) and an
    arm64 one (a single file); the manifest digest of each."""
    oci_layout(path, IMAGE_CONFIG, [busybox_layer()], tags=("amd64",))
    blobs = path / "blobs" / "sha256"

    def blob(data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    arm_layer = layer_of([("file", "arch", b"arm64")])
    arm_config = blob(json.dumps({"architecture": "arm64", "os": "linux", "config": {"Cmd": ["/arch"]},
                                  "rootfs": {"type": "layers", "diff_ids": [diff_id_of(arm_layer)]}}).encode())
    arm_manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **arm_config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(arm_layer)}]}).encode())
    amd_manifest = json.loads((path / "index.json").read_text())["manifests"][0]
    index = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                             "manifests": [
                                 {"mediaType": amd_manifest["mediaType"], "digest": amd_manifest["digest"],
                                  "size": amd_manifest["size"], "platform": {"architecture": "amd64", "os": "linux"}},
                                 {"mediaType": "application/vnd.oci.image.manifest.v1+json", **arm_manifest,
                                  "platform": {"architecture": "arm64", "os": "linux"}}]}).encode())
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", **index,
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    return path, {"amd64": amd_manifest["digest"], "arm64": arm_manifest["digest"]}


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the index's images are amd64 and arm64")
def test_a_multi_platform_index_is_resolved_to_this_machine(tmp_path: Path, registry: Registry,
                                                            start_daemon: Callable[..., Daemon]) -> None:
    layout, manifests = multi_platform_layout(tmp_path / "multi")
    index_digest = registry.push(layout, "v1", "team/multi:v1", every_platform=True)
    daemon = start_daemon(insecure=(registry.address,))
    with daemon.client(timeout=60) as client:
        by_tag = client.pull(f"{registry.address}/team/multi:v1")
        assert by_tag.digest == manifests["amd64"], "this machine's manifest is stored"
        by_index = client.pull(f"{registry.address}/team/multi@{index_digest}")
        assert (by_index.tag, by_index.digest) == (None, manifests["amd64"])
        client.start("multi", image=f"{registry.address}/team/multi@{index_digest}", args=["from", "an", "index"])
    assert "args: from an index" in output_of(daemon, "multi")
    nothing_left(daemon)


def disk_use(path: Path) -> int:
    """Bytes `du` counts under `path` on its own filesystem (not inside the overlay mounts)."""
    done = subprocess.run(["du", "-x", "-s", "-B1", str(path)], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[0])


@pytest.mark.slow
def test_eight_containers_of_a_pulled_40_mb_image_share_its_layers(tmp_path: Path, registry: Registry,
                                                                   start_daemon: Callable[..., Daemon]) -> None:
    big = layer_of([("file", "big", os.urandom(40 * MB)), ("file", "deleted-above", b"in the lower layer")])
    upper = layer_of([("file", ".wh.deleted-above", b""), ("file", "upper", b"from the upper layer")])
    config = {**IMAGE_CONFIG, "Entrypoint": ["/bin/sh", "-c"],
              "Cmd": ["test ! -e /deleted-above && cat /upper && sleep 1000"], "User": "0:0"}
    registry.push(oci_layout(tmp_path / "big", config, [busybox_layer(), big, upper], tags=("v1",)), "v1",
                  "team/big:v1")
    daemon = start_daemon(insecure=(registry.address,))
    ref = f"{registry.address}/team/big:v1"
    with daemon.client(timeout=60) as client:
        client.pull(ref)
        pulled = disk_use(daemon.root_dir)
        client.start("big0", image=ref)
        first = disk_use(daemon.root_dir) - pulled
        assert 40 * MB < first < 48 * MB, f"the first container unpacks the layers once: {first} bytes"
        for n in range(1, 8):
            client.start(f"big{n}", image=ref)
        for n in range(8):
            wait_until(lambda n=n: b"from the upper layer" in b"".join(  # type: ignore[misc]
                r.data for r in client.logs(f"big{n}")), 15, message=f"big{n} to run")
        others = disk_use(daemon.root_dir) - pulled - first
        assert others < 2 * MB, f"seven more containers added {others} bytes: they share the layers"
        for n in range(8):
            client.remove(f"big{n}", force=True)
    nothing_left(daemon)
