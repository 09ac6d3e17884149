"""The CRI container's spec run by real runc through a real actord: a busybox bundle whose
config.json is `actors.crispec`'s spec, its findings read from its output. The user a name
resolves to with its groups, dropped capabilities, no_new_privs, the RuntimeDefault seccomp
filter (and a syscall it blocks), the pod's PID and IPC namespaces joined, a read-only root,
masked paths (given and default), the pod's files, a device node, a privileged container, and
an rslave host mount that sees a mount the host makes after the start."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from actorctl.bundle import create_bundle
from actors.crispec.capabilities import CAPABILITIES, DEFAULT_CAPABILITIES
from actors.crispec.pod import PodFacts
from actors.crispec.spec import container_spec
from tests.crispec_inputs import GROUP, PASSWD, pod_config
from tests.harness import Daemon, wait_until

NODE = api_pb2.NamespaceMode.NODE


def host_pod(sandbox_id: str = "sandbox1", **files: Any) -> PodFacts:
    """A pod on the host's network and IPC with no infra to join (its containers have a PID
    namespace of their own)."""
    return PodFacts(sandbox_id, 0, None, **files)


def run(daemon: Daemon, directory: Path, container_id: str, script: str, context: api_pb2.LinuxContainerSecurityContext,
        *, pod: PodFacts | None = None, sandbox: api_pb2.PodSandboxConfig | None = None,
        **fields: Any) -> dict[str, Any]:
    """Start a container running `sh -c script` with the spec of `context` and `fields`; its spec."""
    pod = pod or host_pod()
    if pod.infra_pid == 0:
        context.namespace_options.pid = api_pb2.NamespaceMode.CONTAINER
    bundle = create_bundle(directory / container_id, ["true"])
    (bundle / "rootfs" / "etc" / "passwd").write_text(PASSWD)
    (bundle / "rootfs" / "etc" / "group").write_text(GROUP)
    config = api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name=container_id),
                                     command=["sh", "-c", script],
                                     linux=api_pb2.LinuxContainerConfig(security_context=context), **fields)
    spec = container_spec(container_id, config, sandbox or pod_config(network=NODE, ipc=NODE), {},
                          bundle / "rootfs", pod)
    (bundle / "config.json").write_text(json.dumps(spec))
    daemon.start_container(container_id, bundle)
    return spec


def output(daemon: Daemon, container_id: str) -> str:
    """The container's stdout and stderr, once it has exited."""
    daemon.wait_events(lambda events: any(e["type"] == "exit" and e["id"] == container_id for e in events))
    logs = daemon.ctl("containers", "logs", container_id)
    return logs.stdout + logs.stderr


def capability_mask(names: list[str]) -> str:
    return f"{sum(1 << CAPABILITIES.index(name) for name in names):016x}"


def status_line(text: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(key + ":"))


def test_user_groups_capabilities_no_new_privs_seccomp_and_the_pods_namespaces(
        daemon: Daemon, tmp_path: Path, bundles: Callable[..., Path]) -> None:
    infra = daemon.start_container("infra", bundles("sleep", "100000"))["processes"][0]["system_pid"]
    context = api_pb2.LinuxContainerSecurityContext(
        run_as_username="alice", supplemental_groups=[7], no_new_privs=True,
        capabilities=api_pb2.Capability(drop_capabilities=["CHOWN", "CAP_NET_RAW"], add_capabilities=["SYS_TIME"]),
        seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault))
    pod = PodFacts("sandbox1", infra, None)
    run(daemon, tmp_path, "c1", "id; cat /proc/self/status; echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); "
        "echo timers=$(wc -c < /proc/timer_list)",
        context, pod=pod, sandbox=pod_config(network=NODE))
    seen = output(daemon, "c1")
    assert "uid=1000(alice) gid=1000(alice) groups=7,10(wheel),29(audio)" in seen, seen
    expected = [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_NET_RAW")] + ["CAP_SYS_TIME"]
    assert status_line(seen, "CapBnd") == capability_mask(expected)
    assert status_line(seen, "NoNewPrivs") == "1"
    assert status_line(seen, "Seccomp") == "2"
    assert "pid1=sleep 100000" in seen, seen
    assert "timers=0\n" in seen, "containerd's default masked paths"
    assert Path(f"/proc/{infra}/ns/ipc").readlink() != Path("/proc/self/ns/ipc").readlink()
    daemon.call("containers.signal", {"id": "infra", "signal": 9})


def test_the_runtime_default_profile_blocks_swapoff_that_unconfined_lets_through(daemon: Daemon,
                                                                                 tmp_path: Path) -> None:
    """swapoff(2) of a file that is no swap: EINVAL from the kernel for a process with
    CAP_SYS_ADMIN, but EPERM from Debian's profile, which refuses swapoff whatever the caps."""
    admin = api_pb2.Capability(add_capabilities=["SYS_ADMIN"])
    for container_id, profile in (("confined", api_pb2.SecurityProfile.RuntimeDefault),
                                  ("unconfined", api_pb2.SecurityProfile.Unconfined)):
        run(daemon, tmp_path, container_id, "swapoff /etc/passwd", api_pb2.LinuxContainerSecurityContext(
            capabilities=admin, seccomp=api_pb2.SecurityProfile(profile_type=profile)))
    assert "Operation not permitted" in output(daemon, "confined")
    assert "Invalid argument" in output(daemon, "unconfined")


def test_readonly_root_masked_paths_pod_files_and_a_device(daemon: Daemon, tmp_path: Path) -> None:
    (tmp_path / "resolv.conf").write_text("nameserver 10.9.8.7\n")
    (tmp_path / "hosts").write_text("10.9.8.6 podhost\n")
    context = api_pb2.LinuxContainerSecurityContext(readonly_rootfs=True,
                                                    masked_paths=["/proc/version", "/proc/timer_list"])
    device = api_pb2.Device(host_path="/dev/null", container_path="/dev/mynull", permissions="rwm")
    pod = host_pod(resolv_conf=tmp_path / "resolv.conf", hosts_file=tmp_path / "hosts")
    script = ("touch /new-file || echo write-refused; echo version=$(wc -c < /proc/version); "
              "echo timers=$(wc -c < /proc/timer_list); echo cpuinfo=$(wc -c < /proc/cpuinfo); "
              "cat /etc/resolv.conf /etc/hosts; ls -l /dev/mynull; echo x > /dev/mynull && echo device-written")
    run(daemon, tmp_path, "ro", script, context, pod=pod, devices=[device])
    seen = output(daemon, "ro")
    assert "write-refused" in seen and "Read-only file system" in seen, seen
    assert "version=0\n" in seen and "timers=0\n" in seen and "cpuinfo=0\n" not in seen, seen
    assert "nameserver 10.9.8.7" in seen and "10.9.8.6 podhost" in seen
    assert "crw-rw-rw-" in seen and "1,   3" in seen and "device-written" in seen, seen
    assert not (tmp_path / "ro" / "rootfs" / "new-file").exists()


@contextlib.contextmanager
def shared_mount(path: Path) -> Iterator[Path]:
    """`path` bind-mounted on itself as a shared mount (and whatever is mounted below it
    unmounted at the end)."""
    path.mkdir()
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-R", str(path)], check=True)


def test_an_rslave_host_path_sees_a_mount_made_on_the_host_after_the_start(daemon: Daemon, tmp_path: Path) -> None:
    with shared_mount(tmp_path / "shared") as shared:
        (shared / "later").mkdir()
        mount = api_pb2.Mount(container_path="/data", host_path=str(shared),
                              propagation=api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER)
        script = ("echo started; timeout 10 sh -c 'until [ -e /data/later/marker ]; do sleep 0.05; done' "
                  "&& echo seen-the-later-mount")
        spec = run(daemon, tmp_path, "slave", script, api_pb2.LinuxContainerSecurityContext(), mounts=[mount])
        assert spec["linux"]["rootfsPropagation"] == "rslave"
        wait_until(lambda: "started" in daemon.ctl("containers", "logs", "slave").stdout, message="the container")
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shared / "later")], check=True)
        (shared / "later" / "marker").write_text("")
        assert "seen-the-later-mount" in output(daemon, "slave")


def test_privileged_has_every_capability_the_hosts_devices_and_no_filter_or_masks(daemon: Daemon,
                                                                                   tmp_path: Path) -> None:
    context = api_pb2.LinuxContainerSecurityContext(
        privileged=True, seccomp=api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.RuntimeDefault))
    sandbox = pod_config(network=NODE, ipc=NODE, privileged=True)
    spec = run(daemon, tmp_path, "priv", "cat /proc/self/status; echo timers=$(wc -c < /proc/timer_list); "
               "ls -l /dev/null /dev/zero; grep ' /sys sysfs ' /proc/self/mounts", context,
               sandbox=sandbox)
    seen = output(daemon, "priv")
    assert status_line(seen, "CapBnd") == status_line(Path("/proc/self/status").read_text(), "CapBnd")
    assert status_line(seen, "Seccomp") == "0" and "timers=0\n" not in seen, seen
    assert "crw-rw-rw-" in seen and "/dev/zero" in seen, seen
    assert "sysfs /sys sysfs rw," in seen, seen
    assert len(spec["linux"]["devices"]) > 2
