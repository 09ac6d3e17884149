"""Mounts and devices of a CRI container without root: the CRI's host paths (made when
missing, symlinks resolved, propagation and containerd's checks of the host mount), the pod's
files and /dev/shm, the base mounts they cover, and devices stat'ed from the host."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from actors.crispec.errors import CrispecError, ErrorKind
from actors.crispec.mounts import mount_point_of
from actors.crispec.pod import PodFacts
from tests.crispec_inputs import make_host, make_spec, pod_config, security

PRIVATE = api_pb2.MountPropagation.PROPAGATION_PRIVATE
RSLAVE = api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER
RSHARED = api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL


def mountinfo(*lines: tuple[str, str]) -> str:
    """A /proc/self/mountinfo text of (mount point, optional fields) lines."""
    return "".join(f"{n} 1 0:{n} / {point} rw,relatime {fields} - ext4 /dev/x rw\n".replace("  ", " ")
                   for n, (point, fields) in enumerate(lines, start=20))


def with_mounts(*mounts: api_pb2.Mount, **fields: Any) -> api_pb2.ContainerConfig:
    config = security(**fields)
    config.mounts.extend(mounts)
    return config


def bind(spec: dict[str, Any], destination: str) -> dict[str, Any]:
    found = [m for m in spec["mounts"] if m["destination"] == destination]
    assert len(found) == 1, spec["mounts"]
    mount: dict[str, Any] = found[0]
    return mount


def test_propagation_becomes_rprivate_rslave_rshared_and_sets_the_roots(tmp_path: Path) -> None:
    for name in ("private", "slave", "shared"):
        (tmp_path / name).mkdir()
    host = make_host(tmp_path, mountinfo=mountinfo(("/", "shared:1"), (str(tmp_path / "slave"), "master:3"),
                                                   (str(tmp_path / "private"), "")))
    config = with_mounts(api_pb2.Mount(container_path="/p", host_path=str(tmp_path / "private"), readonly=True),
                         api_pb2.Mount(container_path="/s", host_path=str(tmp_path / "slave"), propagation=RSLAVE))
    spec = make_spec(tmp_path, config, host=host)
    assert bind(spec, "/p") == {"destination": "/p", "type": "bind", "source": str(tmp_path / "private"),
                                "options": ["rbind", "rprivate", "ro"]}
    assert bind(spec, "/s")["options"] == ["rbind", "rslave", "rw"]
    assert spec["linux"]["rootfsPropagation"] == "rslave"
    config.mounts.append(api_pb2.Mount(container_path="/b", host_path=str(tmp_path / "shared"), propagation=RSHARED))
    spec = make_spec(tmp_path, config, host=host)
    assert bind(spec, "/b")["options"] == ["rbind", "rshared", "rw"]
    assert spec["linux"]["rootfsPropagation"] == "rshared"
    assert "rootfsPropagation" not in make_spec(tmp_path, with_mounts(config.mounts[0]), host=host)["linux"]


@pytest.mark.parametrize(("fields", "propagation", "message"), [
    ("", RSLAVE, "its propagation needs a shared or slave mount, but it is on .*/data, which is not"),
    ("master:4", RSHARED, "its propagation needs a shared mount, but it is on .*/data, which is not"),
])
def test_propagation_the_host_mount_does_not_allow_is_refused(tmp_path: Path, fields: str,
                                                              propagation: api_pb2.MountPropagation.ValueType,
                                                              message: str) -> None:
    (tmp_path / "data" / "sub").mkdir(parents=True)
    host = make_host(tmp_path, mountinfo=mountinfo(("/", "shared:1"), (str(tmp_path / "data"), fields)))
    config = with_mounts(api_pb2.Mount(container_path="/d", host_path=str(tmp_path / "data" / "sub"),
                                       propagation=propagation))
    with pytest.raises(CrispecError, match=f"mounts\\[0\\] host_path .*sub: {message}"):
        make_spec(tmp_path, config, host=host)


def test_the_mount_point_is_the_longest_and_last_match() -> None:
    text = mountinfo(("/", "shared:1"), ("/srv", "master:2"), ("/srv/data", ""), ("/srv", "shared:9"),
                     ("/srv\\040data", "shared:5"))
    assert mount_point_of("/srv/x", text) == ("/srv", ["shared:9"])
    assert mount_point_of("/srv/data/y", text) == ("/srv/data", [])
    assert mount_point_of("/srvdata", text) == ("/", ["shared:1"])
    assert mount_point_of("/srv data/z", text) == ("/srv data", ["shared:5"])


def test_a_missing_host_path_is_made_and_a_symlink_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    config = with_mounts(api_pb2.Mount(container_path="/new", host_path=str(tmp_path / "made" / "deep")),
                         api_pb2.Mount(container_path="/l", host_path=str(tmp_path / "link")))
    spec = make_spec(tmp_path, config)
    assert (tmp_path / "made" / "deep").is_dir() and (tmp_path / "made" / "deep").stat().st_mode & 0o777 == 0o755
    assert bind(spec, "/l")["source"] == str(tmp_path / "real")


@pytest.mark.parametrize(("mount", "message"), [
    (api_pb2.Mount(container_path="rel", host_path="/tmp"), r"mounts\[0\] container_path 'rel' is not an absolute"),
    (api_pb2.Mount(container_path="/x", host_path=""), r"mounts\[0\] host_path is empty"),
    (api_pb2.Mount(container_path="/x", host_path="tmp"), r"mounts\[0\] host_path 'tmp' is not an absolute path"),
    (api_pb2.Mount(container_path="/x", host_path="/tmp", propagation=9),  # type: ignore[arg-type]
     r"propagation 9 is not a propagation"),
    (api_pb2.Mount(container_path="/x", host_path="/tmp", recursive_read_only=True), "recursive_read_only"),
])
def test_a_bad_mount_is_named(tmp_path: Path, mount: api_pb2.Mount, message: str) -> None:
    with pytest.raises(CrispecError, match=message) as caught:
        make_spec(tmp_path, with_mounts(mount))
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT


def pod_with_files(tmp_path: Path) -> PodFacts:
    for name in ("resolv.conf", "hostname", "hosts"):
        (tmp_path / name).write_text("x\n")
    (tmp_path / "shm").mkdir()
    return PodFacts("sandbox1", 4242, Path("/run/netns/pod1"), resolv_conf=tmp_path / "resolv.conf",
                    hostname_file=tmp_path / "hostname", hosts_file=tmp_path / "hosts", shm=tmp_path / "shm")


def test_the_pods_files_and_shm_are_mounted_read_only_with_a_read_only_root(tmp_path: Path) -> None:
    pod = pod_with_files(tmp_path)
    spec = make_spec(tmp_path, security(readonly_rootfs=True), pod=pod)
    for path in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts"):
        assert bind(spec, path)["options"] == ["rbind", "rprivate", "ro"]
        assert bind(spec, path)["source"] == str(tmp_path / path.rpartition("/")[2])
    assert bind(spec, "/dev/shm") == {"destination": "/dev/shm", "type": "bind", "source": str(tmp_path / "shm"),
                                      "options": ["rbind", "rprivate", "rw"]}
    assert bind(make_spec(tmp_path, security(), pod=pod), "/etc/hosts")["options"][-1] == "rw"


def test_a_cri_mount_wins_over_the_pods_file_and_a_base_mount(tmp_path: Path) -> None:
    pod = pod_with_files(tmp_path)
    (tmp_path / "mine").write_text("mine\n")
    (tmp_path / "devdir").mkdir()
    config = with_mounts(api_pb2.Mount(container_path="/etc/hosts", host_path=str(tmp_path / "mine")),
                         api_pb2.Mount(container_path="/dev", host_path=str(tmp_path / "devdir")))
    spec = make_spec(tmp_path, config, pod=pod)
    assert bind(spec, "/etc/hosts")["source"] == str(tmp_path / "mine")
    assert bind(spec, "/dev")["type"] == "bind"
    assert [m["destination"] for m in spec["mounts"] if m["destination"].startswith("/dev/")] == ["/dev/shm"]
    assert bind(spec, "/dev/shm")["source"] == str(tmp_path / "shm")
    destinations = [m["destination"] for m in spec["mounts"] if m["type"] == "bind"]
    assert destinations.index("/dev") < destinations.index("/etc/hosts")


def test_without_a_pod_shm_the_base_tmpfs_stays_and_host_ipc_gets_the_hosts(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, security())
    assert bind(spec, "/dev/shm")["type"] == "tmpfs"
    node = api_pb2.NamespaceMode.NODE
    spec = make_spec(tmp_path, security(), sandbox=pod_config(ipc=node))
    assert bind(spec, "/dev/shm")["source"] == "/dev/shm"
    assert "/etc/hostname" not in [m["destination"] for m in spec["mounts"]]


def device(host_path: str, container_path: str = "/dev/mine", permissions: str = "rw") -> api_pb2.ContainerConfig:
    config = security()
    config.devices.append(api_pb2.Device(host_path=host_path, container_path=container_path, permissions=permissions))
    return config


def test_a_device_is_stated_and_allowed(tmp_path: Path) -> None:
    (tmp_path / "null-link").symlink_to("/dev/null")
    spec = make_spec(tmp_path, device(str(tmp_path / "null-link")))
    info = os.stat("/dev/null")
    assert spec["linux"]["devices"] == [{"path": "/dev/mine", "type": "c", "major": 1, "minor": 3,
                                         "fileMode": 0o666, "uid": info.st_uid, "gid": info.st_gid}]
    assert spec["linux"]["resources"]["devices"] == [
        {"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]


@pytest.mark.parametrize(("host_path", "permissions", "kind", "message"), [
    ("/dev/nonexistent-device", "rw", ErrorKind.NOT_FOUND, r"devices\[0\] host_path /dev/nonexistent-device does not"),
    ("/etc/hostname", "rw", ErrorKind.INVALID_ARGUMENT, r"devices\[0\] host_path /etc/hostname is not a device"),
    ("/dev/null", "rwx", ErrorKind.INVALID_ARGUMENT, r"devices\[0\] permissions 'rwx': not a combination"),
    ("dev/null", "rw", ErrorKind.INVALID_ARGUMENT, r"devices\[0\] host_path 'dev/null' is not an absolute path"),
])
def test_a_bad_device_is_named(tmp_path: Path, host_path: str, permissions: str, kind: ErrorKind,
                               message: str) -> None:
    with pytest.raises(CrispecError, match=message) as caught:
        make_spec(tmp_path, device(host_path, permissions=permissions))
    assert caught.value.kind is kind


def test_a_refused_config_makes_no_host_path(tmp_path: Path) -> None:
    config = with_mounts(api_pb2.Mount(container_path="/new", host_path=str(tmp_path / "never")),
                         capabilities=api_pb2.Capability(add_capabilities=["NOPE"]))
    with pytest.raises(CrispecError, match="'NOPE' is not a capability"):
        make_spec(tmp_path, config)
    assert not (tmp_path / "never").exists()
