"""Pod sandboxes through the CRI socket of a real actord (as the kubelet drives them), each
daemon on a private CNI network (tests/podnet_host.py: its own conf dir, bridge, subnet and
host-local data dir, never /etc/cni/net.d): run, status, list and its filters, stop, remove,
what the infra container sees (hostname, resolv.conf, host network, the pod's /dev/shm), a
hostPort, the error codes, a CNI failure, NetworkReady, a daemon killed and started again, pods at once. After
each pod's removal: nothing of it is left on the host."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from tests.cri_client import CALL_TIMEOUT, CriClient, grpc_error
from tests.harness import Daemon, checked_daemon, free_port, mounts_under, new_state_dir, remove_state_dir, wait_until
from tests.podnet_host import (
    BIN_DIRS,
    PrivateNetwork,
    listener_in,
    private_network,
    remove_idle_shared_chains,
    run,
    shared_chains,
)

READY, NOTREADY = api_pb2.SANDBOX_READY, api_pb2.SANDBOX_NOTREADY


@pytest.fixture(scope="module", autouse=True)
def _shared_chains_restored() -> Iterator[None]:
    existed = shared_chains()
    yield
    remove_idle_shared_chains(existed)


@dataclass
class Node:
    """An actord on a private network, and a CRI client on its socket."""

    daemon: Daemon
    net: PrivateNetwork
    cri: CriClient

    @property
    def runtime(self) -> Any:
        return self.cri.runtime

    def run_pod(self, name: str = "web", **config: Any) -> str:
        metadata = api_pb2.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="test-ns", attempt=0)
        request = api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(metadata=metadata, **config))
        answer = self.runtime.RunPodSandbox(request, timeout=CALL_TIMEOUT)
        pod_id: str = answer.pod_sandbox_id
        return pod_id

    def status(self, pod_id: str) -> tuple[api_pb2.PodSandboxStatus, dict[str, Any]]:
        answer = self.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=True),
                                               timeout=CALL_TIMEOUT)
        return answer.status, json.loads(answer.info["info"])

    def listed(self, **filters: Any) -> list[str]:
        request = api_pb2.ListPodSandboxRequest(filter=api_pb2.PodSandboxFilter(**filters)) if filters else \
            api_pb2.ListPodSandboxRequest()
        return [item.id for item in self.runtime.ListPodSandbox(request, timeout=CALL_TIMEOUT).items]

    def stop(self, pod_id: str) -> None:
        self.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)

    def remove(self, pod_id: str) -> None:
        self.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)

    def infra_pid(self, pod_id: str) -> int:
        with self.daemon.client() as client:
            process = client.container(pod_id).process("init")
        assert process is not None and process.system_pid is not None
        return process.system_pid

    def shm(self, pod_id: str) -> Path:
        """Where the pod's /dev/shm tmpfs is mounted (actors/pods/shm.py)."""
        return self.daemon.state_dir / "pods" / pod_id / "shm"

    def network_ready(self) -> api_pb2.RuntimeCondition:
        conditions = self.runtime.Status(api_pb2.StatusRequest(), timeout=CALL_TIMEOUT).status.conditions
        condition: api_pb2.RuntimeCondition = next(item for item in conditions if item.type == "NetworkReady")
        return condition

    def leftovers(self, pod_id: str, ip: str | None, host_veths: list[str]) -> list[str]:
        """What the pod left: the private network's check (veth, bridge port, host-local file,
        iptables rules and chains) and the daemon's (netns, pod dir, shm, mounts, container,
        shim). The infra container's shim ends, and actord then unmounts its rootfs, just after
        the removal that killed it has answered: those two are waited for (a few ms)."""
        wait_until(lambda: not self.daemon.live_shims() and not mounts_under(self.daemon.state_dir / "containers"),
                   message="the infra container's shim and rootfs mount to go")
        self.net.host_veths[pod_id] = host_veths
        found = self.net.leftovers(pod_id, ip)
        netns = self.daemon.state_dir / "netns" / pod_id
        found += [f"netns {netns}"] if netns.exists() else []
        pod_dir = self.daemon.root_dir / "pods" / pod_id
        found += [f"pod dir {pod_dir}"] if pod_dir.exists() else []
        shm_dir = self.shm(pod_id).parent
        found += [f"shm dir {shm_dir}"] if shm_dir.exists() else []
        mounts = mounts_under(self.daemon.state_dir) + mounts_under(self.daemon.root_dir)
        found += [f"mount {point}" for point in mounts]
        found += [f"runc container {entry['id']}" for entry in self.daemon.runc_containers()]
        found += [f"shim {pid}" for pid in self.daemon.live_shims()]
        with self.daemon.client() as client:
            found += [f"container {container.id}" for container in client.containers()]
        return found


def mount_at(point: Path) -> tuple[str, set[str], set[str]] | None:
    """The file system type, mount options and super options of the last mount at `point`, from
    /proc/self/mountinfo; None: nothing is mounted there."""
    found = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(point):
            after = fields[fields.index("-") + 1:]
            found = after[0], set(fields[5].split(",")), set(after[2].split(","))
    return found


def host_veths(info: dict[str, Any], bridge: str) -> list[str]:
    """The host ends of the pod's veths, from its CNI result."""
    result = info.get("cni_result") or {}
    return [interface["name"] for interface in result.get("interfaces", [])
            if not interface.get("sandbox") and interface["name"] != bridge]


@pytest.fixture
def start_node(request: pytest.FixtureRequest) -> Iterator[Callable[..., Node]]:
    """Start actord on a private network; `conf=False` leaves the conf dir empty. Whatever was
    entered is left again, the last first, also when a start fails half-way."""
    with contextlib.ExitStack() as stack:

        def start(conf: bool = True) -> Node:
            net = stack.enter_context(private_network())
            if not conf:
                for path in net.conf_dir.iterdir():
                    path.unlink()
            state_dir = new_state_dir()
            stack.callback(remove_state_dir, state_dir)
            args = ["--cni-conf-dir", str(net.conf_dir), "--cni-bin-dir", ":".join(map(str, BIN_DIRS))]
            daemon = stack.enter_context(checked_daemon(Daemon(state_dir, extra_args=args), request))
            wait_until((state_dir / "cri.sock").exists, message="the CRI socket")
            cri = stack.enter_context(CriClient(state_dir / "cri.sock"))
            return Node(daemon, net, cri)

        yield start


def answer(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as connection:
        return connection.recv(64)


def test_a_pod_runs_answers_is_listed_stops_and_is_removed_leaving_nothing(start_node: Callable[..., Node]) -> None:
    node = start_node()
    dns = api_pb2.DNSConfig(servers=["10.96.0.10"], searches=["test-ns.svc.cluster.local"], options=["ndots:5"])
    pod_id = node.run_pod("web", hostname="web-host", dns_config=dns, labels={"app": "web", "tier": "front"},
                          annotations={"note": "x"})
    other = node.run_pod("db", labels={"app": "db"})
    status, info = node.status(pod_id)
    assert (status.state, status.metadata.name, status.metadata.namespace) == (READY, "web", "test-ns")
    assert dict(status.labels) == {"app": "web", "tier": "front"} and dict(status.annotations) == {"note": "x"}
    ip = status.network.ip
    assert ip and ip in [str(host) for host in ipaddress.ip_network(node.net.subnet).hosts()]
    veths = host_veths(info, node.net.bridge)
    netns = node.daemon.state_dir / "netns" / pod_id
    with listener_in(netns, 8080, "from-the-pod"):
        assert answer(ip, 8080) == b"from-the-pod"

    pid = node.infra_pid(pod_id)
    assert run("nsenter", "--uts", f"--target={pid}", "hostname").strip() == "web-host"
    assert Path(f"/proc/{pid}/root/etc/resolv.conf").read_text() == \
        "search test-ns.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"
    assert os.readlink(f"/proc/{pid}/ns/net") == run("stat", "-L", "-c", "net:[%i]", str(netns)).strip()
    listed = json.loads(node.daemon.ctl("containers", "list", "--json").stdout)
    infra = next(container for container in listed if container["id"] == pod_id)
    assert infra["labels"]["io.kubernetes.cri.type"] == "sandbox" and infra["labels"]["actord.pod"] == pod_id

    assert sorted(node.listed()) == sorted([pod_id, other])
    assert node.listed(id=pod_id) == [pod_id] and node.listed(id=pod_id[:12]) == [pod_id]
    assert node.listed(id="0" * 64) == []
    assert node.listed(label_selector={"app": "web"}) == [pod_id]
    assert node.listed(label_selector={"app": "web", "tier": "back"}) == []
    assert sorted(node.listed(state=api_pb2.PodSandboxStateValue(state=READY))) == sorted([pod_id, other])
    assert node.listed(state=api_pb2.PodSandboxStateValue(state=NOTREADY)) == []

    node.stop(pod_id)
    status, _ = node.status(pod_id)
    assert status.state == NOTREADY and status.network.ip == ""
    assert not netns.exists() and not any(Path(f"/sys/class/net/{veth}").exists() for veth in veths)
    node.stop(pod_id)  # idempotent
    assert node.listed(state=api_pb2.PodSandboxStateValue(state=NOTREADY)) == [pod_id]
    assert node.listed(state=api_pb2.PodSandboxStateValue(state=READY)) == [other]

    node.remove(pod_id)
    node.remove(other)  # READY: stopped first
    assert node.listed() == []
    assert node.leftovers(pod_id, ip, veths) == []
    node.remove(pod_id)  # gone: success, as the CRI says


def test_a_host_port_reaches_a_listener_in_the_pod(start_node: Callable[..., Node]) -> None:
    node = start_node()
    host_port = free_port()
    pod_id = node.run_pod("mapped", port_mappings=[api_pb2.PortMapping(host_port=host_port, container_port=8080)])
    status, info = node.status(pod_id)
    with listener_in(node.daemon.state_dir / "netns" / pod_id, 8080, "mapped"):
        assert answer("127.0.0.1", host_port) == b"mapped"
    node.remove(pod_id)
    assert not any(f"--dport {host_port}" in line for line in run("iptables-save", "-t", "nat").splitlines())
    assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []


def test_a_host_network_pod_has_no_netns_of_its_own(start_node: Callable[..., Node]) -> None:
    node = start_node()
    options = api_pb2.NamespaceOption(network=api_pb2.NODE)
    linux = api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=options))
    pod_id = node.run_pod("hostnet", linux=linux)
    status, info = node.status(pod_id)
    assert status.state == READY and status.network.ip == "" and info["cni_result"] is None
    assert status.linux.namespaces.options.network == api_pb2.NODE
    pid = node.infra_pid(pod_id)
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/uts") == os.readlink("/proc/self/ns/uts")
    assert not (node.daemon.state_dir / "netns" / pod_id).exists()
    node.remove(pod_id)
    assert node.leftovers(pod_id, None, []) == []


def test_a_pods_shm_is_a_tmpfs_its_infra_mounts_and_its_stop_unmounts(start_node: Callable[..., Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("shm")
    status, info = node.status(pod_id)
    shm = node.shm(pod_id)
    mount = mount_at(shm)
    assert mount is not None, f"no tmpfs at {shm}"
    kind, options, super_options = mount
    assert kind == "tmpfs" and {"nosuid", "nodev", "noexec"} <= options
    assert "size=65536k" in super_options and stat.S_IMODE(shm.stat().st_mode) == 0o1777
    (shm / "note").write_text("from the host")
    infra_shm = Path(f"/proc/{node.infra_pid(pod_id)}/root/dev/shm")
    assert (infra_shm / "note").read_text() == "from the host"
    node.stop(pod_id)
    assert mount_at(shm) is None and not shm.parent.exists()
    node.stop(pod_id)  # idempotent
    node.remove(pod_id)
    assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []


def test_a_host_ipc_pod_has_the_hosts_shm_and_none_of_its_own(start_node: Callable[..., Node]) -> None:
    node = start_node()
    options = api_pb2.NamespaceOption(ipc=api_pb2.NODE)
    linux = api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=options))
    pod_id = node.run_pod("hostipc", linux=linux)
    status, info = node.status(pod_id)
    assert not node.shm(pod_id).parent.exists()
    note = Path("/dev/shm") / f"actord-test-{pod_id}"
    note.write_text("from the host")
    try:
        assert Path(f"/proc/{node.infra_pid(pod_id)}/root{note}").read_text() == "from the host"
    finally:
        note.unlink()
    node.remove(pod_id)
    assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []


def test_the_error_codes_of_bad_requests_and_unknown_pods(start_node: Callable[..., Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("once")
    twice = grpc_error(node.run_pod, "once")
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS and pod_id in twice.details()
    node.stop(pod_id)
    assert grpc_error(node.run_pod, "once").code() == grpc.StatusCode.ALREADY_EXISTS  # reserved until removed
    no_uid = api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="x", namespace="ns")))
    missing = grpc_error(node.runtime.RunPodSandbox, no_uid)
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata.uid" in missing.details()
    handler = api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="x", uid="u", namespace="ns")), runtime_handler="kata")
    refused = grpc_error(node.runtime.RunPodSandbox, handler)
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT and "'kata'" in refused.details()
    unknown = "f" * 64
    for call, request in ((node.runtime.PodSandboxStatus, api_pb2.PodSandboxStatusRequest(pod_sandbox_id=unknown)),
                          (node.runtime.StopPodSandbox, api_pb2.StopPodSandboxRequest(pod_sandbox_id=unknown))):
        assert grpc_error(call, request).code() == grpc.StatusCode.NOT_FOUND
    node.remove(unknown)
    node.remove(pod_id)
    assert node.listed() == [] and node.leftovers(pod_id, None, []) == []


def test_a_cni_failure_is_an_error_that_leaves_nothing(start_node: Callable[..., Node]) -> None:
    node = start_node()
    config = node.net.conflist()
    config["plugins"].insert(1, {"type": "no-such-plugin"})
    node.net.write_conf(config)
    assert not node.network_ready().status and "no-such-plugin" in node.network_ready().message
    failed = grpc_error(node.run_pod, "broken")
    assert failed.code() == grpc.StatusCode.UNKNOWN and "no-such-plugin" in failed.details()
    assert node.listed() == []
    assert node.leftovers("none", None, []) == []
    assert list((node.daemon.root_dir / "pods").iterdir()) == []
    assert list((node.daemon.state_dir / "netns").iterdir()) == []
    assert list((node.daemon.state_dir / "pods").glob("*")) == [], "the shm mounted before the CNI ADD stays"
    node.net.write_conf(node.net.conflist())
    pod_id = node.run_pod("broken")  # the daemon serves on, and the name was released
    node.remove(pod_id)


def test_an_infra_container_that_cannot_start_undoes_the_network_and_leaves_nothing(
        start_node: Callable[..., Node]) -> None:
    node = start_node()
    linux = api_pb2.LinuxPodSandboxConfig(sysctls={"net.no_such_sysctl": "1"})  # runc refuses it at create
    failed = grpc_error(lambda: node.run_pod("unstartable", linux=linux))
    assert failed.code() == grpc.StatusCode.UNKNOWN and "infra container did not start" in failed.details()
    assert "no_such_sysctl" in failed.details()
    assert node.listed() == []
    assert node.leftovers("none", None, []) == []  # no bridge port, allocation, netns, mount, container
    assert list((node.daemon.root_dir / "pods").iterdir()) == []
    assert list((node.daemon.state_dir / "pods").glob("*")) == [], "the shm mounted for the infra stays"
    pod_id = node.run_pod("unstartable")  # the name was released
    node.remove(pod_id)


def test_network_ready_follows_the_conf_dir(start_node: Callable[..., Node]) -> None:
    node = start_node(conf=False)
    condition = node.network_ready()
    assert not condition.status and condition.reason == "NetworkPluginNotReady" and condition.message
    node.net.write_conf(node.net.conflist())
    assert node.network_ready().status


def test_a_killed_daemon_started_again_keeps_the_pod_and_its_ip(start_node: Callable[..., Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("survivor")
    status, info = node.status(pod_id)
    pid = node.infra_pid(pod_id)
    (node.shm(pod_id) / "note").write_text("kept")
    node.daemon.stop(signal.SIGKILL)
    node.daemon.start()
    wait_until((node.daemon.state_dir / "cri.sock").exists, message="the CRI socket")
    again, _ = node.status(pod_id)
    assert (again.state, again.network.ip, again.created_at) == (READY, status.network.ip, status.created_at)
    assert node.infra_pid(pod_id) == pid
    assert mount_at(node.shm(pod_id)) is not None and (node.shm(pod_id) / "note").read_text() == "kept"
    assert node.listed() == [pod_id]
    node.stop(pod_id)
    node.remove(pod_id)
    assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []


def test_a_run_cut_short_by_a_killed_daemon_is_undone_when_it_starts_again(start_node: Callable[..., Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("cut-short")
    status, info = node.status(pod_id)
    node.daemon.stop(signal.SIGKILL)
    (node.daemon.root_dir / "pods" / pod_id / "pod.json").unlink()  # as if killed before its last step
    stray = node.daemon.state_dir / "netns" / ("e" * 64)
    stray.touch()  # a netns file no pod has (its namespace never mounted)
    assert mount_at(node.shm(pod_id)) is not None
    node.daemon.start()
    wait_until((node.daemon.state_dir / "cri.sock").exists, message="the CRI socket")
    assert not (node.daemon.root_dir / "pods" / pod_id).exists() and not stray.exists()
    assert not (node.daemon.state_dir / "netns" / pod_id).exists()
    assert mount_at(node.shm(pod_id)) is None and not node.shm(pod_id).parent.exists()
    with node.daemon.client() as client:
        assert client.knows(pod_id)  # the infra container: actord kept it running
    assert node.listed() == []  # the first list removes it
    assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []
    assert "a run cut short by a daemon stop, undone" in node.daemon.log()


@pytest.mark.slow
def test_ten_pods_at_once_run_stop_and_go_leaving_nothing(start_node: Callable[..., Node]) -> None:
    node = start_node()
    with ThreadPoolExecutor(10) as pool:
        pod_ids = list(pool.map(lambda n: node.run_pod(f"pod{n}"), range(10)))
        seen = [node.status(pod_id) for pod_id in pod_ids]
        assert {status.state for status, _ in seen} == {READY}
        assert len({status.network.ip for status, _ in seen}) == 10
        list(pool.map(node.stop, pod_ids))
        list(pool.map(node.remove, pod_ids))
    assert node.listed() == []
    for pod_id, (status, info) in zip(pod_ids, seen, strict=True):
        assert node.leftovers(pod_id, status.network.ip, host_veths(info, node.net.bridge)) == []
    assert run("ip", "-o", "link", "show", "master", node.net.bridge) == ""


def test_actorctl_lists_and_inspects_the_pods(start_node: Callable[..., Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("shown", labels={"app": "shown"})
    status, _ = node.status(pod_id)
    [listed] = json.loads(node.daemon.ctl("pods", "list", "--json").stdout)
    assert (listed["id"], listed["metadata"]["name"], listed["state"]) == (pod_id, "shown", "READY")
    assert listed["ips"] == [status.network.ip] and listed["infra_id"] == pod_id
    header, row = node.daemon.ctl("pods", "list").stdout.splitlines()
    assert header.split() == ["ID", "NAME", "NAMESPACE", "STATE", "IP", "CREATED"]
    assert row.split()[:5] == [pod_id[:13], "shown", "test-ns", "READY", status.network.ip]
    inspected = json.loads(node.daemon.ctl("pods", "inspect", "--json", pod_id[:8]).stdout)
    assert inspected["id"] == pod_id and inspected["cni_result"]["ips"]
    assert f"ips:       {status.network.ip}" in node.daemon.ctl("pods", "inspect", pod_id).stdout
    missing = node.daemon.ctl("pods", "inspect", "0" * 64)
    assert missing.returncode == 1 and "no pod sandbox" in missing.stderr
    node.stop(pod_id)
    [stopped] = json.loads(node.daemon.ctl("pods", "list", "--json").stdout)
    assert (stopped["state"], stopped["ips"]) == ("NOTREADY", [])
    node.remove(pod_id)
    assert json.loads(node.daemon.ctl("pods", "list", "--json").stdout) == []
