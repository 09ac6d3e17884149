"""Pod sandboxes' pure parts without root: the state machine's table, the pod store (names
reserved, records written and read back, id prefixes, per-pod locks), a RunPodSandbox
request's checks, and the infra container's spec and the pod's resolv.conf."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from actors.cri.podconfig import HostSecurity, read_pod_config
from actors.cri.status import Refusal
from actors.pods.infra import DnsConfig, InfraSpec, infra_spec, resolv_conf
from actors.pods.states import IllegalTransition, PodState, check_transition
from actors.pods.store import AmbiguousId, NameTaken, PodMetadata, PodRecord, PodStore

META = PodMetadata("web", "uid-1", "default", 2)
NO_LSM = HostSecurity(apparmor=False, selinux=False)


def record(store: PodStore, metadata: PodMetadata = META) -> PodRecord:
    pod_id = store.reserve(metadata)
    made = PodRecord(id=pod_id, metadata=metadata, state=PodState.READY, created_at=1, netns=f"/run/x/{pod_id}",
                     infra_id=pod_id, labels={"app": "web"}, annotations={"a": "b"},
                     port_mappings=({"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},))
    store.create(made)
    return made


def test_only_the_moves_in_the_table_are_allowed() -> None:
    check_transition(None, PodState.READY)
    check_transition(PodState.READY, PodState.NOTREADY)
    check_transition(PodState.NOTREADY, PodState.NOTREADY)
    check_transition(PodState.NOTREADY, None)
    for current, target in ((PodState.NOTREADY, PodState.READY), (PodState.READY, None), (None, PodState.NOTREADY),
                            (PodState.READY, PodState.READY)):
        with pytest.raises(IllegalTransition):
            check_transition(current, target)


def test_a_name_is_reserved_until_its_pod_is_released(tmp_path: Path) -> None:
    store = PodStore(tmp_path)
    assert META.reserved_name == "web_default_uid-1_2"
    pod_id = store.reserve(META)
    assert len(pod_id) == 64 and int(pod_id, 16) >= 0
    with pytest.raises(NameTaken) as taken:
        store.reserve(META)
    assert taken.value.pod_id == pod_id
    assert store.reserve(PodMetadata("web", "uid-1", "default", 3)) != pod_id  # another attempt is another name
    store.release(pod_id, META)
    assert store.reserve(META) != pod_id


def test_records_are_written_moved_read_back_and_removed(tmp_path: Path) -> None:
    store = PodStore(tmp_path)
    made = record(store)
    assert json.loads((tmp_path / made.id / "pod.json").read_text())["state"] == "READY"
    stopped = store.move(made, PodState.NOTREADY)
    assert store.move(stopped, PodState.NOTREADY) is stopped  # stop again: nothing to write
    with pytest.raises(IllegalTransition):
        store.move(stopped, PodState.READY)
    again = PodStore(tmp_path)
    assert again.load() == [stopped]
    with pytest.raises(NameTaken):  # a restarted daemon still knows the name
        again.reserve(META)
    with pytest.raises(IllegalTransition):
        again.remove(made)  # READY: stop first
    again.remove(stopped)
    assert not (tmp_path / made.id).exists() and again.all() == []
    again.reserve(META)


def test_a_damaged_record_is_skipped_and_left(tmp_path: Path) -> None:
    store = PodStore(tmp_path)
    good = record(store)
    bad = tmp_path / ("f" * 64)
    bad.mkdir()
    (bad / "pod.json").write_text("{not json")
    (tmp_path / "not-a-pod").mkdir()
    assert PodStore(tmp_path).load() == [good]
    assert bad.exists()


def test_an_id_or_its_unique_prefix_finds_the_pod(tmp_path: Path) -> None:
    store = PodStore(tmp_path)
    pods = [record(store, PodMetadata(f"p{n}", "u", "ns")) for n in range(20)]
    first = pods[0].id
    assert store.resolve(first) == first
    assert store.resolve(first[:20]) == first
    assert store.resolve("") is None and store.resolve("zz") is None
    shared = next((a.id[:1] for a in pods for b in pods if a is not b and a.id[0] == b.id[0]), None)
    assert shared is not None  # 20 ids over 16 first digits
    with pytest.raises(AmbiguousId, match="matches"):
        store.resolve(shared)


def test_one_pods_calls_wait_for_each_other_and_other_pods_do_not(tmp_path: Path) -> None:
    store = PodStore(tmp_path)
    one, other = record(store), record(store, PodMetadata("db", "u2", "default"))
    entered = threading.Event()
    results: list[str] = []

    def second_on(pod_id: str) -> None:
        with store.locked(pod_id):
            results.append(pod_id)
        entered.set()

    with store.locked(one.id) as held:
        assert held == one
        thread = threading.Thread(target=second_on, args=(other.id,))
        thread.start()
        assert entered.wait(10)  # another pod: not held up
        thread.join()
        entered.clear()
        thread = threading.Thread(target=second_on, args=(one.id,))
        thread.start()
        assert not entered.wait(0.2)  # the same pod: it waits for us
    thread.join()
    assert results == [other.id, one.id]
    with store.locked("0" * 64) as missing:
        assert missing is None


def run_request(**config: Any) -> api_pb2.RunPodSandboxRequest:
    return api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(**config))


def refusal(request: api_pb2.RunPodSandboxRequest, host: HostSecurity = NO_LSM) -> Refusal:
    with pytest.raises(Refusal) as refused:
        read_pod_config(request, host)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return refused.value


def test_a_run_request_is_checked_naming_the_field() -> None:
    metadata = api_pb2.PodSandboxMetadata(name="web", uid="u", namespace="ns")
    assert "metadata is required" in refusal(run_request()).message
    for missing in ("name", "uid", "namespace"):
        partial = api_pb2.PodSandboxMetadata()
        partial.CopyFrom(metadata)
        partial.ClearField(missing)
        assert f"metadata.{missing} is required" in refusal(run_request(metadata=partial)).message
    kata = run_request(metadata=metadata)
    kata.runtime_handler = "kata"
    assert "runtime_handler 'kata'" in refusal(kata).message
    context = api_pb2.LinuxSandboxSecurityContext(selinux_options=api_pb2.SELinuxOption(type="spc_t"))
    selinux = run_request(metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig(security_context=context))
    assert "SELinux is not enabled" in refusal(selinux).message
    read_pod_config(selinux, HostSecurity(apparmor=False, selinux=True))
    profile = api_pb2.SecurityProfile(profile_type=api_pb2.SecurityProfile.Localhost, localhost_ref="mine")
    apparmor = run_request(metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(apparmor=profile)))
    assert "AppArmor is not enabled" in refusal(apparmor).message
    slice_parent = run_request(metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent="kubepods.slice"))
    assert "cgroup_parent" in refusal(slice_parent).message
    bad_port = run_request(metadata=metadata, port_mappings=[api_pb2.PortMapping(host_port=70000, container_port=80)])
    assert "port_mappings[0]" in refusal(bad_port).message


def test_a_run_request_is_read_into_the_pods_config() -> None:
    request = run_request(
        metadata=api_pb2.PodSandboxMetadata(name="web", uid="u", namespace="ns", attempt=1), hostname="h",
        dns_config=api_pb2.DNSConfig(servers=["10.0.0.10"], searches=["a.local"], options=["ndots:5"]),
        port_mappings=[api_pb2.PortMapping(host_port=8080, container_port=80, protocol=api_pb2.UDP),
                       api_pb2.PortMapping(container_port=81)],
        linux=api_pb2.LinuxPodSandboxConfig(cgroup_parent="/kubepods/pod-u/", sysctls={"net.ipv4.ip_forward": "1"},
                                            security_context=api_pb2.LinuxSandboxSecurityContext(
                                                namespace_options=api_pb2.NamespaceOption(
                                                    network=api_pb2.NODE, ipc=api_pb2.NODE))))
    config = read_pod_config(request, NO_LSM)
    assert config.metadata == PodMetadata("web", "u", "ns", 1)
    assert [(m.host_port, m.container_port, m.protocol) for m in config.port_mappings] == [(8080, 80, "udp")]
    assert (config.host_network, config.host_pid, config.host_ipc) == (True, False, True)
    assert config.cgroup_parent == "/kubepods/pod-u"
    assert resolv_conf(config.dns) == "search a.local\nnameserver 10.0.0.10\noptions ndots:5\n"


def test_the_infra_spec_joins_the_pods_namespaces(tmp_path: Path) -> None:
    own = infra_spec(tmp_path, InfraSpec(netns="/run/a/netns/p", hostname="pod-host", sysctls={"k": "v"},
                                         cgroups_path="/kubepods/p"))
    namespaces = {entry["type"]: entry.get("path") for entry in own["linux"]["namespaces"]}
    assert namespaces == {"mount": None, "network": "/run/a/netns/p", "uts": None, "pid": None, "ipc": None}
    assert own["hostname"] == "pod-host" and own["linux"]["sysctl"] == {"k": "v"}
    assert own["linux"]["cgroupsPath"] == "/kubepods/p"
    assert own["root"] == {"path": "rootfs", "readonly": True}
    assert own["process"]["args"] == ["/catatonit", "-P"]
    mounts = {mount["destination"]: mount for mount in own["mounts"]}
    assert mounts["/etc/resolv.conf"]["source"] == str(tmp_path / "resolv.conf")
    assert "ro" in mounts["/catatonit"]["options"]
    host = infra_spec(tmp_path, InfraSpec(netns="", host_pid=True, host_ipc=True, hostname="ignored"))
    assert [entry["type"] for entry in host["linux"]["namespaces"]] == ["mount"]
    host_shm = next(mount for mount in host["mounts"] if mount["destination"] == "/dev/shm")
    assert (host_shm["type"], host_shm["source"]) == ("bind", "/dev/shm")
    assert "hostname" not in host and "/dev/mqueue" not in {mount["destination"] for mount in host["mounts"]}
    assert DnsConfig().empty and not DnsConfig(options=("ndots:1",)).empty


def test_the_infra_bind_mounts_the_pods_shm_read_only(tmp_path: Path) -> None:
    spec = infra_spec(tmp_path, InfraSpec(netns="/run/a/netns/p", shm="/run/a/pods/p/shm"))
    shm = next(mount for mount in spec["mounts"] if mount["destination"] == "/dev/shm")
    assert shm == {"destination": "/dev/shm", "type": "bind", "source": "/run/a/pods/p/shm",
                   "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}
