"""The CRI container's spec without root: process (args, env, cwd, tty), capabilities,
privileged, no_new_privs, read-only root, masked and read-only paths, AppArmor and SELinux
refused, namespaces, resources and annotations, each as containerd 1.6 makes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2

from actors.crispec.base import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from actors.crispec.capabilities import DEFAULT_CAPABILITIES
from actors.crispec.errors import CrispecError, ErrorKind
from actors.crispec.pod import PodFacts
from tests.crispec_inputs import HOST_CAPABILITIES, POD, make_host, make_spec, pod_config, security

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["default"], "Env": ["PATH=/image/bin", "A=image", "B=image"],
         "WorkingDir": "work"}
NODE = api_pb2.NamespaceMode.NODE


def config(**fields: Any) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="c1"), **fields)


def refused(tmp_path: Path, container: api_pb2.ContainerConfig, message: str, *,
            kind: ErrorKind = ErrorKind.INVALID_ARGUMENT, **options: Any) -> None:
    with pytest.raises(CrispecError, match=message) as caught:
        make_spec(tmp_path, container, **options)
    assert caught.value.kind is kind


@pytest.mark.parametrize(("fields", "image", "expected"), [
    ({}, IMAGE, ["/entry", "default"]),
    ({"args": ["x", "y"]}, IMAGE, ["/entry", "x", "y"]),
    ({"command": ["/bin/cmd"]}, IMAGE, ["/bin/cmd"]),
    ({"command": ["/bin/cmd"], "args": ["z"]}, IMAGE, ["/bin/cmd", "z"]),
    ({}, {"Cmd": ["only-cmd"]}, ["only-cmd"]),
    ({"args": ["a"]}, {"Entrypoint": [""], "Cmd": ["c"]}, ["a"]),
])
def test_command_replaces_entrypoint_and_args_replace_cmd(tmp_path: Path, fields: dict[str, Any],
                                                          image: dict[str, Any], expected: list[str]) -> None:
    assert make_spec(tmp_path, config(**fields), image=image)["process"]["args"] == expected


def test_no_command_anywhere_is_invalid(tmp_path: Path) -> None:
    refused(tmp_path, config(), "container config: no command", image={"Env": ["A=1"]})


def test_env_is_path_hostname_image_then_config_later_wins(tmp_path: Path) -> None:
    envs = [api_pb2.KeyValue(key="B", value="config"), api_pb2.KeyValue(key="C", value="x=y")]
    spec = make_spec(tmp_path, config(envs=envs), image=IMAGE)
    assert spec["process"]["env"] == ["PATH=/image/bin", "HOSTNAME=podhost", "A=image", "B=config", "C=x=y"]
    refused(tmp_path, config(envs=[api_pb2.KeyValue(key="", value="v")]), "envs: '' is not a variable name",
            image=IMAGE)


@pytest.mark.parametrize(("working_dir", "image", "expected"), [
    ("/srv/app/", IMAGE, "/srv/app"), ("", IMAGE, "/work"), ("", {"Cmd": ["x"]}, "/")])
def test_working_dir_is_the_configs_else_the_images_else_root(tmp_path: Path, working_dir: str,
                                                              image: dict[str, Any], expected: str) -> None:
    assert make_spec(tmp_path, config(working_dir=working_dir), image=image)["process"]["cwd"] == expected


def test_a_relative_working_dir_is_invalid(tmp_path: Path) -> None:
    refused(tmp_path, config(working_dir="rel"), "working_dir 'rel' is not an absolute path", image=IMAGE)


def test_tty_sets_the_terminal(tmp_path: Path) -> None:
    assert make_spec(tmp_path, config(tty=True, stdin=True), image=IMAGE)["process"]["terminal"] is True
    assert make_spec(tmp_path, config(), image=IMAGE)["process"]["terminal"] is False


def capabilities(spec: dict[str, Any]) -> list[str]:
    sets = spec["process"]["capabilities"]
    assert sets["bounding"] == sets["effective"] == sets["permitted"]
    assert "ambient" not in sets and "inheritable" not in sets
    return list(sets["bounding"])


@pytest.mark.parametrize(("add", "drop", "expected"), [
    ([], [], list(DEFAULT_CAPABILITIES)),
    (["NET_ADMIN", "cap_sys_time"], ["chown", "CAP_KILL"],
     [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")] + ["CAP_NET_ADMIN", "CAP_SYS_TIME"]),
    (["ALL"], [], sorted(HOST_CAPABILITIES)),
    (["all"], ["CHOWN"], sorted(HOST_CAPABILITIES - {"CAP_CHOWN"})),
    ([], ["ALL"], []),
    (["NET_RAW"], ["ALL"], ["CAP_NET_RAW"]),
])
def test_capabilities_are_added_and_dropped(tmp_path: Path, add: list[str], drop: list[str],
                                            expected: list[str]) -> None:
    spec = make_spec(tmp_path, security(capabilities=api_pb2.Capability(add_capabilities=add,
                                                                        drop_capabilities=drop)))
    assert sorted(capabilities(spec)) == sorted(expected)


@pytest.mark.parametrize(("add", "drop", "message"), [
    (["NOPE"], [], "add_capabilities: 'NOPE' is not a capability"),
    ([], ["CAP_BOGUS"], "drop_capabilities: 'CAP_BOGUS' is not a capability"),
    (["SYS_RESOURCE"], [], "'SYS_RESOURCE' is not in the bounding set of actord on this host"),
])
def test_a_bad_capability_is_named(tmp_path: Path, add: list[str], drop: list[str], message: str) -> None:
    refused(tmp_path, security(capabilities=api_pb2.Capability(add_capabilities=add, drop_capabilities=drop)),
            message)


def test_privileged_gives_every_capability_no_masks_host_devices_and_no_seccomp(tmp_path: Path) -> None:
    host = make_host(tmp_path, devices=Path("/dev"))
    spec = make_spec(tmp_path, security(privileged=True, seccomp_profile_path="runtime/default"),
                     sandbox=pod_config(privileged=True), host=host)
    assert sorted(capabilities(spec)) == sorted(HOST_CAPABILITIES)
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert "seccomp" not in spec["linux"]
    assert {"path": "/dev/null", "type": "c", "major": 1, "minor": 3}.items() <= next(
        d for d in spec["linux"]["devices"] if d["path"] == "/dev/null").items()
    assert not any(d["path"].startswith(("/dev/pts/", "/dev/shm/")) for d in spec["linux"]["devices"])
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_privileged_needs_a_privileged_pod(tmp_path: Path) -> None:
    refused(tmp_path, security(privileged=True), "privileged: a privileged container needs a privileged pod")


def test_no_new_privs_and_readonly_rootfs(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, security(no_new_privs=True, readonly_rootfs=True))
    assert spec["process"]["noNewPrivileges"] is True and spec["root"] == {"path": "rootfs", "readonly": True}
    spec = make_spec(tmp_path, security())
    assert spec["process"]["noNewPrivileges"] is False and spec["root"]["readonly"] is False


def test_masked_and_readonly_paths_given_or_the_defaults(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, security(masked_paths=["/proc/x"], readonly_paths=["/proc/y", "/sys/z"]))
    assert spec["linux"]["maskedPaths"] == ["/proc/x"] and spec["linux"]["readonlyPaths"] == ["/proc/y", "/sys/z"]
    spec = make_spec(tmp_path, security())
    assert spec["linux"]["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert spec["linux"]["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    refused(tmp_path, security(masked_paths=["proc"]), "masked_paths: 'proc' is not an absolute path")


@pytest.mark.parametrize(("fields", "message"), [
    ({"apparmor": api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault)},
     "apparmor 'RuntimeDefault': AppArmor is not enabled on this host"),
    ({"apparmor_profile": "localhost/my-profile"}, "apparmor 'localhost/my-profile': AppArmor is not enabled"),
    ({"selinux_options": api_pb2.SELinuxOption(level="s0:c1,c2")},
     "security context selinux_options: SELinux is not enabled on this host"),
])
def test_apparmor_and_selinux_options_are_refused_without_them(tmp_path: Path, fields: dict[str, Any],
                                                               message: str) -> None:
    refused(tmp_path, security(**fields), message)


def test_unconfined_apparmor_is_no_option(tmp_path: Path) -> None:
    unconfined = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Unconfined)
    assert "apparmorProfile" not in make_spec(tmp_path, security(apparmor=unconfined))["process"]
    assert "apparmorProfile" not in make_spec(tmp_path, security(apparmor_profile="unconfined"))["process"]


def test_pod_selinux_options_are_refused_too(tmp_path: Path) -> None:
    sandbox = pod_config()
    sandbox.linux.security_context.selinux_options.type = "spc_t"
    refused(tmp_path, security(), "pod sandbox security context selinux_options", sandbox=sandbox)


def namespaces(spec: dict[str, Any]) -> dict[str, str | None]:
    return {ns["type"]: ns.get("path") for ns in spec["linux"]["namespaces"]}


def test_the_pods_namespaces_are_joined(tmp_path: Path) -> None:
    assert namespaces(make_spec(tmp_path, security())) == {
        "mount": None, "network": "/run/netns/pod1", "uts": "/proc/4242/ns/uts", "ipc": "/proc/4242/ns/ipc",
        "pid": "/proc/4242/ns/pid"}


def test_host_network_ipc_and_pid_are_the_hosts(tmp_path: Path) -> None:
    host_pod = PodFacts("sandbox1", 4242, None)
    spec = make_spec(tmp_path, security(namespace_options=api_pb2.NamespaceOption(network=NODE, pid=NODE, ipc=NODE)),
                     pod=host_pod, sandbox=pod_config(network=NODE, pid=NODE, ipc=NODE))
    assert namespaces(spec) == {"mount": None}


def test_a_pid_namespace_of_its_own_or_of_a_target(tmp_path: Path) -> None:
    own = security(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.NamespaceMode.CONTAINER))
    assert namespaces(make_spec(tmp_path, own))["pid"] is None
    target = security(namespace_options=api_pb2.NamespaceOption(pid=api_pb2.NamespaceMode.TARGET, target_id="c0"))
    assert namespaces(make_spec(tmp_path, target, target_pid=77))["pid"] == "/proc/77/ns/pid"
    refused(tmp_path, target, "target_id 'c0': no running container of the pod has that id")


def test_the_cgroup_namespace_only_on_cgroup_v2(tmp_path: Path) -> None:
    assert "cgroup" not in namespaces(make_spec(tmp_path, security()))
    assert "cgroup" in namespaces(make_spec(tmp_path, security(), host=make_host(tmp_path, cgroup_unified=True)))


def resources(**fields: Any) -> api_pb2.ContainerConfig:
    return config(command=["sh"], linux=api_pb2.LinuxContainerConfig(
        resources=api_pb2.LinuxContainerResources(**fields)))


def test_resources_become_the_specs(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, resources(cpu_period=100000, cpu_quota=50000, cpu_shares=512,
                                         memory_limit_in_bytes=64 << 20, cpuset_cpus="0-1", cpuset_mems="0",
                                         oom_score_adj=-500))
    assert spec["linux"]["resources"]["cpu"] == {"period": 100000, "quota": 50000, "shares": 512, "cpus": "0-1",
                                                 "mems": "0"}
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert spec["process"]["oomScoreAdj"] == -500
    without_swap = make_spec(tmp_path, resources(memory_limit_in_bytes=1 << 20, memory_swap_limit_in_bytes=2 << 20),
                             host=make_host(tmp_path, swap_controller=False))
    assert without_swap["linux"]["resources"]["memory"] == {"limit": 1 << 20, "swap": 2 << 20}
    assert "cpu" not in make_spec(tmp_path, resources())["linux"]["resources"]


@pytest.mark.parametrize(("fields", "message"), [
    ({"cpu_shares": -1}, "linux resources cpu_shares -1 is negative"),
    ({"cpuset_cpus": "0-a"}, "cpuset_cpus '0-a' is not a list"),
    ({"oom_score_adj": 1001}, "oom_score_adj 1001 is out of range"),
    ({"hugepage_limits": [api_pb2.HugepageLimit(page_size="2MB", limit=1 << 21)]},
     "hugepage_limits: the hugetlb cgroup controller is missing on this host"),
    ({"unified": {"memory.high": "1000000"}}, r"unified \['memory.high'\]: cgroup v2 settings, but this host's "
                                              r"cgroups are v1"),
])
def test_bad_or_unsupported_resources_are_named(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    refused(tmp_path, resources(**fields), message)


def test_hugepages_and_unified_where_the_host_has_them(tmp_path: Path) -> None:
    host = make_host(tmp_path, hugetlb=True, cgroup_unified=True)
    spec = make_spec(tmp_path, resources(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=1 << 21)],
                                         unified={"memory.high": "1000000"}), host=host)
    assert spec["linux"]["resources"]["hugepageLimits"] == [{"pageSize": "2MB", "limit": 1 << 21}]
    assert spec["linux"]["resources"]["unified"] == {"memory.high": "1000000"}


def test_the_cgroup_path_is_below_the_pods_parent(tmp_path: Path) -> None:
    pod = PodFacts("sandbox1", 4242, Path("/run/netns/pod1"), cgroup_parent="/kubepods/pod-uid")
    assert make_spec(tmp_path, security(), pod=pod)["linux"]["cgroupsPath"] == "/kubepods/pod-uid/c1"
    assert "cgroupsPath" not in make_spec(tmp_path, security(), pod=POD)["linux"]


def test_annotations_pass_but_runtime_instructions_do_not(tmp_path: Path) -> None:
    container = config(command=["sh"], annotations={
        "team": "web", "io.kubernetes.container.hash": "abc", "org.criu.config": "/etc/criu/evil.conf",
        "org.systemd.property.ExecStopPost": "/evil", "run.oci.hooks.stdin": "x",
        "io.kubernetes.cri.sandbox-id": "forged"})
    spec = make_spec(tmp_path, container, image_name="docker.io/library/busybox:1.36")
    assert spec["annotations"] == {
        "team": "web", "io.kubernetes.container.hash": "abc",
        "io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": "sandbox1",
        "io.kubernetes.cri.sandbox-namespace": "default", "io.kubernetes.cri.sandbox-uid": "pod-uid",
        "io.kubernetes.cri.sandbox-name": "pod", "io.kubernetes.cri.container-name": "c1",
        "io.kubernetes.cri.image-name": "docker.io/library/busybox:1.36"}
