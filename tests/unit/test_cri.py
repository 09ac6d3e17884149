"""The CRI's pure logic, without a daemon: --cri-address, AuthConfig to a pull's credentials and
the auth.json they become, the daemon's images as CRI images, error codes, the store's usage,
and which RuntimeService methods answer UNIMPLEMENTED."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from cri_api.v1 import api_pb2

from actorctl.client.errors import Conflict, ImageFailure, InvalidParams, NotFound, Timeout, Unreachable
from actors.cri.address import cri_socket_path
from actors.cri.auth import pull_credentials
from actors.cri.imagefs import store_usage
from actors.cri.imagemap import check_image_name, cri_image, group_by_id, user_of
from actors.cri.runtime import METHODS, SERVED, RuntimeServicer
from actors.cri.status import Refusal, pull_status, status_of
from actors.images.credentials import Credentials, auth_file_fd, auth_json
from actors.wire import ApiError

ID = "sha256:" + "a" * 64
DIGEST = "sha256:" + "b" * 64


def test_the_cri_address() -> None:
    state = Path("/run/actord")
    assert cri_socket_path(None, state) == state / "cri.sock"
    assert cri_socket_path("none", state) is None
    assert cri_socket_path("unix:///run/k8s/../cri.sock", state) == Path("/run/cri.sock")
    for bad in ("tcp://127.0.0.1:1", "unix://relative.sock", "unix:", "/run/x.sock", f"unix:///{'x' * 107}"):
        with pytest.raises(ValueError, match="--cri-address"):
            cri_socket_path(bad, state)


def auth(**fields: str) -> api_pb2.AuthConfig:
    return api_pb2.AuthConfig(**fields)


def test_auth_config_as_containerd_reads_it() -> None:
    assert pull_credentials(auth()) is None
    assert pull_credentials(auth(username="u", password="p", identity_token="t")) == {"username": "u", "password": "p"}
    assert pull_credentials(auth(identity_token="t")) == {"identity_token": "t"}
    encoded = base64.b64encode(b"u:p:with:colons\x00").decode()
    assert pull_credentials(auth(auth=encoded)) == {"username": "u", "password": "p:with:colons"}
    assert pull_credentials(auth(username="u", server_address="https://reg.example:5000/v2/")) == {
        "username": "u", "password": "", "registry": "reg.example:5000"}
    assert pull_credentials(auth(username="u", server_address="https://index.docker.io/v1/")) == {
        "username": "u", "password": "", "registry": "docker.io"}
    assert pull_credentials(auth(username="u", server_address="reg.example")) == {
        "username": "u", "password": "", "registry": "reg.example"}
    for bad, said in ((auth(auth="%%%"), "base64"), (auth(auth=base64.b64encode(b"nocolon").decode()), "base64"),
                      (auth(registry_token="t"), "registry_token"),
                      (auth(username="u", server_address="https://"), "server_address")):
        with pytest.raises(Refusal, match=said) as refused:
            pull_credentials(bad)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_pulls_credentials_on_the_wire_and_in_auth_json(tmp_path: Path) -> None:
    given = Credentials.from_wire({"username": "u", "password": "s3cret", "registry": "reg:5000"})
    assert "s3cret" not in repr(given) and "s3cret" not in str(given)
    assert Credentials.from_wire(given.to_wire()) == given
    assert given.fingerprint() != Credentials.from_wire({"username": "u", "password": "other"}).fingerprint()
    for bad, said in (("text", "map"), ({"username": "u", "extra": "x"}, "unknown key 'extra'"),
                      ({"password": "p"}, "either"), ({"username": "u", "identity_token": "t"}, "either"),
                      ({"username": 1}, "string"), ({"username": "u", "registry": "https://reg/x"}, "host")):
        with pytest.raises(ApiError, match=said):
            Credentials.from_wire(bad)

    daemons = tmp_path / "auth.json"
    daemons.write_text(json.dumps({"auths": {"mirror:1": {"auth": "bTpw"}, "reg:5000": {"auth": "old"}}}))
    merged = json.loads(auth_json(given, "ignored:1", daemons))
    assert merged["auths"] == {"mirror:1": {"auth": "bTpw"},
                               "reg:5000": {"auth": base64.b64encode(b"u:s3cret").decode()}}
    token = Credentials.from_wire({"identity_token": "tok"})
    assert json.loads(auth_json(token, "docker.io", None)) == {"auths": {"docker.io": {"identitytoken": "tok"}}}

    fd = auth_file_fd(token, "docker.io", None)
    try:
        assert not os.get_inheritable(fd)
        assert json.loads(Path(f"/proc/self/fd/{fd}").read_bytes())["auths"]["docker.io"] == {"identitytoken": "tok"}
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:"), "in memory, on no file system"
    finally:
        os.close(fd)


def listed(name: str, tag: str | None, digest: str = DIGEST, image_id: str = ID, size: int = 10) -> dict[str, Any]:
    return {"name": name, "tag": tag, "digest": digest, "id": image_id, "size": size, "created": None}


def test_the_daemons_images_as_cri_images() -> None:
    other = "sha256:" + "c" * 64
    groups = group_by_id([listed("docker.io/library/bb", "v2"), listed("docker.io/library/bb", "v1"),
                          listed("docker.io/library/bb", None), listed("reg/x", "latest", image_id=other)])
    assert list(groups) == [ID, other]
    bb = groups[ID]
    assert bb.repo_tags == ["docker.io/library/bb:v1", "docker.io/library/bb:v2"]
    assert bb.repo_digests == [f"docker.io/library/bb@{DIGEST}"]
    image = cri_image(bb, "1234:4321")
    assert (image.id, image.size, image.uid.value, image.username, image.spec.image) == (ID, 10, 1234, "", ID)
    named = cri_image(bb, "nobody")
    assert not named.HasField("uid") and named.username == "nobody"
    assert user_of("") == (None, "") and user_of("0") == (0, "") and user_of("www-data:www-data") == (None, "www-data")


def test_image_names_checked_as_the_daemon_takes_them() -> None:
    for good in (ID, "a" * 12, "busybox", "reg:5000/team/app:v1", f"busybox@{DIGEST}"):
        assert check_image_name(good, "image.image") == good
    for bad in ("", "UPPER", "bad name", "x@sha256:short", "x" * 1025):
        with pytest.raises(Refusal, match=r"image\.image") as refused:
            check_image_name(bad, "image.image")
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_error_codes() -> None:
    assert status_of(InvalidParams("invalid_params", "x")) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(NotFound("not_found", "x")) == grpc.StatusCode.NOT_FOUND
    assert status_of(Conflict("conflict", "in use")) == grpc.StatusCode.FAILED_PRECONDITION
    assert status_of(Timeout("x")) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_of(Unreachable("x")) == grpc.StatusCode.UNAVAILABLE
    assert status_of(ImageFailure("image_error", "x")) == grpc.StatusCode.UNKNOWN
    said = "cannot pull reg/x:v9: reading manifest v9 in reg/x: manifest unknown"
    assert pull_status(ImageFailure("image_error", said)) == grpc.StatusCode.NOT_FOUND
    for failure in ("reading manifest v1 in reg/x: unauthorized: authentication required",
                    'pinging container registry reg: Get "https://reg/v2/": dial tcp: connect: connection refused'):
        assert pull_status(ImageFailure("image_error", failure)) == grpc.StatusCode.UNKNOWN
    assert pull_status(InvalidParams("invalid_params", "x")) == grpc.StatusCode.INVALID_ARGUMENT


def test_store_usage_counts_each_inode_once(tmp_path: Path) -> None:
    store = tmp_path / "images"
    (store / "layers" / "l1").mkdir(parents=True)
    (store / "layers" / "l1" / "file").write_bytes(b"x" * 100_000)
    os.link(store / "layers" / "l1" / "file", store / "linked")
    (store / "link").symlink_to("/etc")
    usage = store_usage(store)
    assert usage.inodes_used == 5  # images, layers, l1, file (twice linked), link
    assert usage.used_bytes >= 100_000
    assert store_usage(tmp_path / "absent").used_bytes == 0


def test_every_other_runtime_method_is_unimplemented() -> None:
    servicer = RuntimeServicer(cast(Any, None), cast(Any, None), Path("/nonexistent"), (), link=cast(Any, None))
    assert {"CreateContainer", "ExecSync", "GetContainerEvents", "PodSandboxStats"} <= set(METHODS)

    class Context:
        def abort(self, code: grpc.StatusCode, message: str) -> None:
            raise Refusal(code, message)

    for method in set(METHODS) - set(SERVED):
        with pytest.raises(Refusal, match=f"RuntimeService/{method}") as refused:
            getattr(servicer, method)(None, Context())
        assert refused.value.code == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(AttributeError):
        _ = servicer.NoSuchMethod
