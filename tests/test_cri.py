"""The CRI v1 server of a real actord, driven over its unix socket with the Python stubs of
`cri_api` (as the kubelet and crictl drive it): Version and Status; images pulled from a real
registry on 127.0.0.1 (by tag, by digest, by a familiar name, with credentials), looked up,
listed, removed, the store's usage; the error codes; where the socket is and that it goes."""

from __future__ import annotations

import base64
import os
import signal
import socket
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from tests.cri_client import CriClient, grpc_error, image_spec
from tests.harness import (
    ACTORD,
    NO_CONFIG,
    Daemon,
    checked_daemon,
    new_state_dir,
    pid_alive,
    remove_state_dir,
    wait_until,
)
from tests.oci_images import IMAGE_CONFIG, busybox_layer, oci_layout
from tests.registry import BlobGate, Registry, registries_conf


@pytest.fixture
def start_daemon(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start actord with these registries plain-HTTP and searched for short names, and `extra` options."""
    stack: list[Any] = []

    def start(*registries: str, extra: tuple[str, ...] = ()) -> Daemon:
        conf = registries_conf(tmp_path / "registries.conf", insecure=registries, search=registries)
        state_dir = new_state_dir()
        context = checked_daemon(Daemon(state_dir, extra_args=["--registries-conf", str(conf), *extra]), request)
        stack.append((context, state_dir))
        return context.__enter__()

    yield start
    for context, state_dir in stack:
        try:
            context.__exit__(None, None, None)
        finally:
            remove_state_dir(state_dir)


def cri_socket(daemon: Daemon) -> Path:
    """The default CRI socket, once it is there (the CRI is served just after the control socket)."""
    path = daemon.state_dir / "cri.sock"
    wait_until(path.exists, message="the CRI socket")
    return path


def fs_usage(cri: CriClient) -> Any:
    """ImageFsInfo's one filesystem."""
    return cri.images.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=10).image_filesystems[0]


def grpc_loaded(daemon: Daemon) -> bool:
    """Whether grpc's C core is mapped into actord."""
    assert daemon.process is not None
    return "cygrpc" in Path(f"/proc/{daemon.process.pid}/maps").read_text()


def test_version_status_and_what_is_not_served_yet(daemon: Daemon) -> None:
    with CriClient(cri_socket(daemon)) as cri:
        version = cri.runtime.Version(api_pb2.VersionRequest(), timeout=10)
        assert (version.runtime_name, version.runtime_api_version) == ("actord", "v1")
        assert version.runtime_version == daemon.call("version")["version"]
        conditions = {c.type: c for c in cri.runtime.Status(api_pb2.StatusRequest(), timeout=10).status.conditions}
        assert conditions["RuntimeReady"].status is True
        assert "NetworkReady" in conditions  # what it says: tests/test_pods.py, on a network of its own
        error = grpc_error(cri.runtime.Attach, api_pb2.AttachRequest())
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED and "Attach" in str(error.details())
    assert stat.S_IMODE(os.stat(cri_socket(daemon)).st_mode) == 0o600, "root's alone, as the control socket"


@pytest.mark.slow
def test_pull_status_list_and_remove_one_store(registry: Registry, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(registry.address)
    tagged = f"{registry.address}/team/bb:v1"
    with CriClient(cri_socket(daemon)) as cri:
        assert cri.status(tagged) is None, "absent is an empty answer, not an error"
        empty = fs_usage(cri)
        image_id = cri.pull(tagged)
        assert image_id.startswith("sha256:")
        with daemon.client() as client:
            [stored] = client.images()
        assert stored.id == image_id, "one store: actorctl sees what the CRI pulled"
        digest = f"{registry.address}/team/bb@{stored.digest}"
        assert cri.pull(digest) == image_id
        assert cri.pull("bb:v1") == image_id, "a familiar name, completed by the search registries"

        image = cri.status(tagged)
        assert image is not None
        assert image.id == image_id and image.spec.image == image_id
        assert list(image.repo_tags) == [f"{registry.address}/bb:v1", tagged]
        assert f"{registry.address}/team/bb@{stored.digest}" in image.repo_digests
        assert image.size > 0 and image.uid.value == 1234 and image.username == ""  # User "1234:4321"
        for name in (image_id, image_id.removeprefix("sha256:")[:12], digest, "bb:v1"):
            found = cri.status(name)
            assert found is not None and found.id == image_id, name

        assert [i.id for i in cri.list()] == [image_id], "one image, whatever its names"
        assert [i.id for i in cri.list(digest)] == [image_id]
        assert cri.list(f"{registry.address}/team/absent:v1") == []

        usage = fs_usage(cri)
        assert usage.fs_id.mountpoint == str(daemon.root_dir / "images")
        assert usage.used_bytes.value > empty.used_bytes.value + stored.size, "the blobs, and the layer unpacked"
        assert usage.inodes_used.value > empty.inodes_used.value > 0
        assert usage.timestamp > 0

        cri.remove(tagged)
        assert cri.status(image_id) is None and cri.list() == []
        with daemon.client() as client:
            assert client.images() == [], "every name of the image went, as containerd removes"
        cri.remove(tagged)  # absent: success


@pytest.mark.slow
def test_an_image_in_use_is_not_removed(registry: Registry, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon(registry.address)
    sleeper = f"{registry.address}/team/sleeper:v1"
    with CriClient(cri_socket(daemon)) as cri, daemon.client() as client:
        cri.pull(sleeper)
        client.start("user1", image=sleeper)
        error = grpc_error(cri.images.RemoveImage, api_pb2.RemoveImageRequest(image=image_spec(sleeper)))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "user1" in str(error.details())
        assert cri.status(sleeper) is not None
        client.signal("user1", signal.SIGKILL)
        client.wait("user1", timeout=30)


def test_bad_input_gets_invalid_argument_and_the_daemon_serves_on(daemon: Daemon) -> None:
    with CriClient(cri_socket(daemon)) as cri:
        for call, request in (
            (cri.images.PullImage, api_pb2.PullImageRequest(image=image_spec("UPPER:tag"))),
            (cri.images.PullImage, api_pb2.PullImageRequest()),
            (cri.images.ImageStatus, api_pb2.ImageStatusRequest(image=image_spec("bad name"))),
            (cri.images.RemoveImage, api_pb2.RemoveImageRequest(image=image_spec("x@sha256:short"))),
            (cri.images.PullImage, api_pb2.PullImageRequest(image=image_spec("busybox"), auth=api_pb2.AuthConfig(
                auth="not base64!"))),
        ):
            error = grpc_error(call, request)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (request, error)
            assert "image" in str(error.details()) or "auth" in str(error.details())
        huge = grpc_error(cri.images.PullImage, api_pb2.PullImageRequest(image=image_spec("x" * (5 << 20))))
        assert huge.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "a request over 4 MiB is not even read"
        assert cri.runtime.Version(api_pb2.VersionRequest(), timeout=10).runtime_name == "actord"
    assert daemon.ctl("version").returncode == 0


@pytest.mark.slow
def test_pull_errors_and_credentials(registry: Registry, tmp_path: Path,
                                     start_daemon: Callable[..., Daemon]) -> None:
    private = Registry(user=("puller", "s3cret-pw"))
    try:
        private.push(oci_layout(tmp_path / "layout", IMAGE_CONFIG, [busybox_layer()], tags=("v1",)), "v1",
                     "team/private:v1")
        daemon = start_daemon(registry.address, private.address)
        name = f"{private.address}/team/private:v1"
        with CriClient(cri_socket(daemon)) as cri:
            missing = grpc_error(cri.pull, f"{registry.address}/team/bb:no-such-tag")
            assert missing.code() == grpc.StatusCode.NOT_FOUND, missing.details()
            refused = grpc_error(cri.pull, name)
            assert refused.code() == grpc.StatusCode.UNKNOWN and "unauthorized" in str(refused.details()).lower()
            wrong = api_pb2.AuthConfig(username="puller", password="wrong")
            assert grpc_error(cri.pull, name, wrong).code() == grpc.StatusCode.UNKNOWN
            elsewhere = api_pb2.AuthConfig(username="puller", password="s3cret-pw", server_address=registry.address)
            assert grpc_error(cri.pull, name, elsewhere).code() == grpc.StatusCode.UNKNOWN, \
                "credentials for another registry are not sent"

            image_id = cri.pull(name, api_pb2.AuthConfig(username="puller", password="s3cret-pw",
                                                         server_address=f"http://{private.address}"))
            cri.remove(image_id)
            encoded = base64.b64encode(b"puller:s3cret-pw").decode()
            assert cri.pull(name, api_pb2.AuthConfig(auth=encoded)) == image_id
        assert b"s3cret-pw" not in Path(daemon.log_path or "").read_bytes()
        for top in (daemon.state_dir, daemon.root_dir):
            for directory, _, files in os.walk(top):
                for file in files:
                    path = Path(directory, file)
                    if path.is_file():
                        assert b"s3cret-pw" not in path.read_bytes(), f"the password was written to {path}"
    finally:
        private.stop()


def test_no_cri_with_none_and_grpc_never_loaded(start_daemon: Callable[..., Daemon]) -> None:
    off = start_daemon(extra=("--cri-address", "none"))
    assert off.call("version")["settings"]["cri_address"] == "none"
    assert not (off.state_dir / "cri.sock").exists()
    assert not grpc_loaded(off)
    on = start_daemon()
    cri_socket(on)
    assert grpc_loaded(on)


def test_the_socket_moves_and_goes_with_the_daemon(start_daemon: Callable[..., Daemon]) -> None:
    elsewhere = Path(f"{new_state_dir()}/run/cri.sock")
    try:
        daemon = start_daemon(extra=("--cri-address", f"unix://{elsewhere}"))
        wait_until(elsewhere.exists, message="the CRI socket where it was moved")
        assert stat.S_ISSOCK(os.lstat(elsewhere).st_mode) and not (daemon.state_dir / "cri.sock").exists()
        with CriClient(elsewhere) as cri:
            assert cri.runtime.Version(api_pb2.VersionRequest(), timeout=10).runtime_name == "actord"
        assert daemon.stop() == 0
        assert not elsewhere.exists(), "the socket file went with the daemon"
        default = start_daemon()
        socket = cri_socket(default)
        assert default.stop() == 0
        assert not socket.exists()
    finally:
        remove_state_dir(elsewhere.parent.parent)


def test_a_bad_cri_address_is_refused_naming_it() -> None:
    state_dir = new_state_dir()
    try:
        for address, said in (("tcp://127.0.0.1:1", "unix:///ABSOLUTE/PATH"), ("unix://relative.sock", "unix:///"),
                              (f"unix:///{'x' * 120}", "107 bytes")):
            done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), "--root", f"{state_dir}.root",
                                   *NO_CONFIG, "--cri-address", address], capture_output=True, text=True, timeout=60)
            assert done.returncode == 1 and "--cri-address" in done.stderr and said in done.stderr, done.stderr
    finally:
        remove_state_dir(state_dir)


def test_a_stale_socket_is_replaced_and_a_file_is_not(start_daemon: Callable[..., Daemon]) -> None:
    directory = new_state_dir()
    try:
        stale = directory / "stale.sock"
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(stale))  # closed without unlinking, as a daemon that died leaves it
        daemon = start_daemon(extra=("--cri-address", f"unix://{stale}"))
        wait_until(lambda: stat.S_ISSOCK(os.lstat(stale).st_mode) and daemon.log().count("CRI v1") == 1,
                   message="the CRI served on the stale socket's path")
        with CriClient(stale) as cri:
            assert cri.runtime.Version(api_pb2.VersionRequest(), timeout=10).runtime_name == "actord"

        taken = directory / "not-a-socket"
        taken.write_text("someone's file")
        state_dir = new_state_dir()
        try:
            done = subprocess.run([ACTORD, "start", "--state-dir", str(state_dir), "--root", f"{state_dir}.root",
                                   *NO_CONFIG, "--cri-address", f"unix://{taken}"], capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 1 and f"{taken} exists and is not a socket" in done.stderr, done.stderr
            assert taken.read_text() == "someone's file"
            assert not (state_dir / "actord.sock").exists(), "nothing left of the daemon that did not start"
        finally:
            remove_state_dir(state_dir)
    finally:
        remove_state_dir(directory)


@pytest.mark.slow
def test_a_stop_interrupts_a_pull_under_way(registry: Registry, tmp_path: Path) -> None:
    """A pull held by the registry does not hold up the CRI's stop: its call to the image
    service is interrupted, its threads end and its socket goes while the pull is still held."""
    gate = BlobGate(registry)
    state_dir = new_state_dir()
    outcome: list[grpc.RpcError] = []
    conf = registries_conf(tmp_path / "registries.conf", insecure=(gate.address,))
    daemon = Daemon(state_dir, extra_args=["--registries-conf", str(conf)])
    try:
        daemon.start()
        socket_path = cri_socket(daemon)
        spawner = daemon.spawner_pid()

        def pull() -> None:
            with CriClient(socket_path) as cri:
                outcome.append(grpc_error(cri.pull, f"{gate.address}/team/bb:v1"))

        puller = threading.Thread(target=pull)
        puller.start()
        assert gate.blob_asked.wait(30), "the pull reached the registry's blobs"
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGTERM)
        wait_until(lambda: "CRI server stopped" in daemon.log(), message="the CRI stopped while the pull is held")
        assert not socket_path.exists() and not gate.released.is_set()
        puller.join(30)
        [error] = outcome
        assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), error
        gate.release()  # the pull ends, and with it the image service's thread
        assert daemon.process.wait(30) == 0, daemon.log()
        assert spawner is not None and not pid_alive(spawner)
    finally:
        gate.stop()
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        remove_state_dir(state_dir)
