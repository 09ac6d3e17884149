"""ExecSync, UpdateContainerResources and container stats through a real actord's CRI socket, on
containers started as the CRI's CreateContainer/StartContainer start them (the contract: the
actord id is the CRI id, the labels `io.kubernetes.cri.type=container`, `actord.pod`, the
container's name and attempt), with real runc."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2, api_pb2_grpc

from actorctl.client import Client, NotFound
from actors.cgroups import cgroup_dirs
from actors.cri.execsync import ANSWER_LIMIT, STREAM_CAP
from actors.cri.server import THREADS
from tests.cri_client import CriClient, grpc_error
from tests.harness import Daemon, process_table, wait_until

CALL = 30.0
"""Seconds a test's call may take."""
MIB = 1 << 20


def cri_labels(pod_id: str, name: str, attempt: int = 0, **extra: str) -> dict[str, str]:
    return {"io.kubernetes.cri.type": "container", "actord.pod": pod_id,
            "io.kubernetes.cri.container-name": name, "io.kubernetes.cri.container-attempt": str(attempt), **extra}


@pytest.fixture
def cri(daemon: Daemon) -> Iterator[CriClient]:
    path = daemon.state_dir / "cri.sock"
    wait_until(path.exists, message="the CRI socket")
    with CriClient(path) as client:
        yield client


@pytest.fixture
def started(daemon: Daemon) -> Iterator[Callable[..., str]]:
    """Start a container of a bundle with these labels (a random 64-hex id); removed afterwards."""
    client = daemon.client()
    made: list[str] = []

    def start(bundle: Path, labels: dict[str, str]) -> str:
        container_id = secrets.token_hex(32)
        client.start(container_id, bundle=str(bundle), labels=labels)
        made.append(container_id)
        return container_id

    yield start
    for container_id in made:
        with contextlib.suppress(NotFound):  # a removed pod took its containers
            client.remove(container_id, force=True)
    client.close()


def exec_sync(cri: CriClient, container_id: str, *cmd: str, timeout: int = 0) -> api_pb2.ExecSyncResponse:
    answer: api_pb2.ExecSyncResponse = cri.runtime.ExecSync(
        api_pb2.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout), timeout=CALL)
    return answer


def test_exec_sync_separates_output_and_answers_the_exit_code(
        cri: CriClient, started: Callable[..., str], sleeper: Path) -> None:
    container = started(sleeper, cri_labels(secrets.token_hex(32), "app"))
    answer = exec_sync(cri, container, "sh", "-c", "echo out; echo err >&2; echo more; exit 3")
    assert (answer.stdout, answer.stderr, answer.exit_code) == (b"out\nmore\n", b"err\n", 3)
    binary = exec_sync(cri, container, "printf", r"\000\001\377\n\200")
    assert (binary.stdout, binary.stderr, binary.exit_code) == (b"\x00\x01\xff\n\x80", b"", 0)
    big = exec_sync(cri, container, "sh", "-c", f"yes abcdefg | head -c {MIB}; yes xyz | head -c {MIB} >&2")
    assert big.stdout == (b"abcdefg\n" * (MIB // 8 + 1))[:MIB]
    assert big.stderr == (b"xyz\n" * (MIB // 4 + 1))[:MIB]
    assert exec_sync(cri, container, "sh", "-c", "nosuchcommand").exit_code == 127
    missing = grpc_error(cri.runtime.ExecSync, api_pb2.ExecSyncRequest(container_id=container, cmd=["nosuchcommand"]))
    assert missing.code() == grpc.StatusCode.UNKNOWN
    assert "nosuchcommand" in str(missing.details()) and "not found" in str(missing.details())


def test_exec_sync_keeps_fast_output_up_to_its_cap(daemon: Daemon, started: Callable[..., str],
                                                  sleeper: Path) -> None:
    """More than the daemon's two 1 MiB output files, written faster than it is read: none of it
    lost, each stream cut at STREAM_CAP, the answer within the kubelet's 16 MiB."""
    container = started(sleeper, cri_labels(secrets.token_hex(32), "app"))
    channel = grpc.insecure_channel(f"unix://{daemon.state_dir / 'cri.sock'}",
                                    options=[("grpc.max_receive_message_length", ANSWER_LIMIT)])
    with channel:
        runtime = api_pb2_grpc.RuntimeServiceStub(channel)
        answer = runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=container, cmd=[
            "sh", "-c", f"yes abcdefg | head -c {6 * MIB}; yes xyz | head -c {3 * MIB} >&2"]), timeout=CALL)
        assert answer.stdout == (b"abcdefg\n" * (6 * MIB // 8))
        assert answer.stderr == (b"xyz\n" * (3 * MIB // 4))
        capped = runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=container, cmd=[
            "sh", "-c", f"yes abcdefg | head -c {9 * MIB}; yes xyz | head -c {9 * MIB} >&2"]), timeout=CALL)
        assert capped.stdout == (b"abcdefg\n" * (9 * MIB // 8))[:STREAM_CAP]
        assert capped.stderr == (b"xyz\n" * (9 * MIB // 4))[:STREAM_CAP]


def test_exec_sync_timeout_kills_the_process(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                             daemon: Daemon) -> None:
    container = started(sleeper, cri_labels(secrets.token_hex(32), "app"))
    marker = "sleep 7331"

    def running() -> list[object]:
        return [p for p in process_table() if p["cmdline"] == marker and p["state"] != "Z"]

    late = grpc_error(cri.runtime.ExecSync, api_pb2.ExecSyncRequest(container_id=container, cmd=marker.split(),
                                                                     timeout=1))
    assert late.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timeout 1s exceeded" in str(late.details())
    wait_until(lambda: not running(), message="the timed-out process to be gone")
    with daemon.client() as client:
        assert [p.name for p in client.container(container).processes] == ["init"]
    assert exec_sync(cri, container, "true", timeout=5).exit_code == 0  # the name is free again


def test_only_cri_containers_are_served(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                        daemon: Daemon) -> None:
    plain = started(sleeper, {})
    pod = secrets.token_hex(32)
    infra = started(sleeper, {"io.kubernetes.cri.type": "sandbox", "actord.pod": pod})
    for container_id in (secrets.token_hex(32), plain, infra, ""):
        for call, request in (
                (cri.runtime.ExecSync, api_pb2.ExecSyncRequest(container_id=container_id, cmd=["true"])),
                (cri.runtime.UpdateContainerResources, api_pb2.UpdateContainerResourcesRequest(
                    container_id=container_id, linux=api_pb2.LinuxContainerResources(cpu_shares=512))),
                (cri.runtime.ContainerStats, api_pb2.ContainerStatsRequest(container_id=container_id))):
            error = grpc_error(call, request)
            assert error.code() == grpc.StatusCode.NOT_FOUND, (call, container_id, error.details())
    with daemon.client() as client:
        assert [p.name for p in client.container(plain).processes] == ["init"]
        assert [p.name for p in client.container(infra).processes] == ["init"]


def test_exec_sync_in_a_container_that_does_not_run(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                                     daemon: Daemon) -> None:
    container = started(sleeper, cri_labels(secrets.token_hex(32), "frozen"))
    with daemon.client() as client:
        client.pause(container)
        error = grpc_error(cri.runtime.ExecSync, api_pb2.ExecSyncRequest(container_id=container, cmd=["true"]))
        assert error.code() == grpc.StatusCode.UNKNOWN and "paused state, not running" in str(error.details())
        client.resume(container)
    bad = grpc_error(cri.runtime.ExecSync, api_pb2.ExecSyncRequest(container_id=container, cmd=[]))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT


def cgroup_file(client: Client, container_id: str, controller: str, name: str) -> str:
    init = client.container(container_id).process()
    assert init is not None and init.system_pid is not None
    return (cgroup_dirs(init.system_pid)[controller] / name).read_text().strip()


def test_update_container_resources_changes_the_cgroup(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                                       daemon: Daemon) -> None:
    container = started(sleeper, cri_labels(secrets.token_hex(32), "app"))
    cri.runtime.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
        container_id=container, linux=api_pb2.LinuxContainerResources(
            memory_limit_in_bytes=64 * MIB, cpu_period=100_000, cpu_quota=50_000, cpu_shares=256,
            cpuset_cpus="0", cpuset_mems="0")), timeout=CALL)
    with daemon.client() as client:
        assert cgroup_file(client, container, "memory", "memory.limit_in_bytes") == str(64 * MIB)
        assert cgroup_file(client, container, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_file(client, container, "cpu", "cpu.shares") == "256"
        assert cgroup_file(client, container, "cpuset", "cpuset.cpus") == "0"
        unified = grpc_error(cri.runtime.UpdateContainerResources, api_pb2.UpdateContainerResourcesRequest(
            container_id=container, linux=api_pb2.LinuxContainerResources(
                memory_limit_in_bytes=32 * MIB, unified={"memory.high": "1000000"})))
        assert unified.code() == grpc.StatusCode.INVALID_ARGUMENT and "linux.unified" in str(unified.details())
        bad_set = grpc_error(cri.runtime.UpdateContainerResources, api_pb2.UpdateContainerResourcesRequest(
            container_id=container, linux=api_pb2.LinuxContainerResources(cpuset_cpus="0;rm -rf")))
        assert bad_set.code() == grpc.StatusCode.INVALID_ARGUMENT and "cpuset_cpus" in str(bad_set.details())
        assert cgroup_file(client, container, "memory", "memory.limit_in_bytes") == str(64 * MIB)
    assert exec_sync(cri, container, "true").exit_code == 0  # still served


def test_container_stats_show_a_busy_process(cri: CriClient, started: Callable[..., str],
                                             bundles: Callable[..., Path]) -> None:
    pod = secrets.token_hex(32)
    busy = bundles("sh", "-c", "x=$(head -c 30000000 /dev/zero | tr '\\0' a); while :; do :; done")
    container = started(busy, cri_labels(pod, "spinner", 2, tier="web"))

    def stats() -> api_pb2.ContainerStats:
        answer: api_pb2.ContainerStatsResponse = cri.runtime.ContainerStats(
            api_pb2.ContainerStatsRequest(container_id=container), timeout=CALL)
        return answer.stats

    first = wait_until(lambda: (s := stats()).memory.working_set_bytes.value >= 30_000_000 and s,
                       timeout=30, message="the shell to hold 30 MB")
    assert first.attributes.id == container
    assert (first.attributes.metadata.name, first.attributes.metadata.attempt) == ("spinner", 2)
    assert dict(first.attributes.labels) == {"tier": "web"}
    assert first.memory.usage_bytes.value >= first.memory.working_set_bytes.value
    wait_until(lambda: stats().cpu.usage_core_nano_seconds.value >= first.cpu.usage_core_nano_seconds.value
               + 100_000_000, timeout=30, message="0.1 s more of CPU")


def test_list_container_stats_filters(cri: CriClient, started: Callable[..., str], sleeper: Path) -> None:
    pod_a, pod_b = secrets.token_hex(32), secrets.token_hex(32)
    a1 = started(sleeper, cri_labels(pod_a, "one", tier="web"))
    a2 = started(sleeper, cri_labels(pod_a, "two", tier="db"))
    b1 = started(sleeper, cri_labels(pod_b, "one", tier="web"))
    started(sleeper, {})  # not a CRI container: never listed
    started(sleeper, {"io.kubernetes.cri.type": "sandbox", "actord.pod": pod_a})

    def listed(**wanted: Any) -> set[str]:
        answer: api_pb2.ListContainerStatsResponse = cri.runtime.ListContainerStats(
            api_pb2.ListContainerStatsRequest(filter=api_pb2.ContainerStatsFilter(**wanted)), timeout=CALL)
        assert all(s.memory.usage_bytes.value > 0 and s.HasField("cpu") for s in answer.stats)
        return {s.attributes.id for s in answer.stats}

    assert listed() == {a1, a2, b1}
    assert listed(id=a2) == {a2}
    assert listed(id=a2[:12]) == {a2}
    assert listed(pod_sandbox_id=pod_a) == {a1, a2}
    assert listed(label_selector={"tier": "web"}) == {a1, b1}
    assert listed(pod_sandbox_id=pod_b, label_selector={"tier": "db"}) == set()
    assert listed(id=secrets.token_hex(32)) == set()


def test_pod_stats_sum_the_pods_containers(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                            bundles: Callable[..., Path]) -> None:
    host = api_pb2.LinuxPodSandboxConfig(security_context=api_pb2.LinuxSandboxSecurityContext(
        namespace_options=api_pb2.NamespaceOption(network=api_pb2.NODE)))  # no CNI needed
    metadata = api_pb2.PodSandboxMetadata(name="stats", uid="uid-stats", namespace="test-ns", attempt=1)
    pod = cri.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig(
        metadata=metadata, linux=host, labels={"app": "stats"})), timeout=CALL).pod_sandbox_id
    try:
        busy = started(bundles("sh", "-c", "x=$(head -c 30000000 /dev/zero | tr '\\0' a); while :; do :; done"),
                       cri_labels(pod, "spinner"))
        idle = started(sleeper, cri_labels(pod, "idle"))
        started(sleeper, cri_labels(secrets.token_hex(32), "elsewhere"))

        def stats() -> api_pb2.PodSandboxStats:
            answer: api_pb2.PodSandboxStatsResponse = cri.runtime.PodSandboxStats(
                api_pb2.PodSandboxStatsRequest(pod_sandbox_id=pod), timeout=CALL)
            return answer.stats

        found = wait_until(lambda: (s := stats()).linux.memory.working_set_bytes.value >= 30_000_000 and s,
                           timeout=30, message="the pod to hold 30 MB")
        assert (found.attributes.id, found.attributes.metadata.name, dict(found.attributes.labels)) == (
            pod, "stats", {"app": "stats"})
        members = {item.attributes.id: item for item in found.linux.containers}
        assert set(members) == {busy, idle}
        assert found.linux.cpu.usage_core_nano_seconds.value >= sum(
            item.cpu.usage_core_nano_seconds.value for item in members.values())
        assert found.linux.memory.usage_bytes.value >= sum(item.memory.usage_bytes.value for item in members.values())
        assert found.linux.process.process_count.value >= 3  # the infra, the spinner's shell, the sleeper

        def listed(**wanted: Any) -> list[str]:
            answer: api_pb2.ListPodSandboxStatsResponse = cri.runtime.ListPodSandboxStats(
                api_pb2.ListPodSandboxStatsRequest(filter=api_pb2.PodSandboxStatsFilter(**wanted)), timeout=CALL)
            return [item.attributes.id for item in answer.stats]

        assert listed() == [pod]
        assert listed(id=pod[:10], label_selector={"app": "stats"}) == [pod]
        assert listed(label_selector={"app": "other"}) == []
        unknown = grpc_error(cri.runtime.PodSandboxStats, api_pb2.PodSandboxStatsRequest(
            pod_sandbox_id=secrets.token_hex(32)))
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
    finally:
        cri.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=CALL)


def daemon_usage(daemon: Daemon) -> tuple[int, int, int, int]:
    """actord's fds and threads, the processes of this daemon, and the entries of its state dir."""
    assert daemon.process is not None
    pid = daemon.process.pid
    entries = sum(len(dirs) + len(files) for _, dirs, files in os.walk(daemon.state_dir))
    return (len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")), len(daemon.our_pids()),
            entries)


@pytest.mark.slow
def test_many_exec_syncs_leave_nothing_behind(cri: CriClient, started: Callable[..., str], sleeper: Path,
                                              daemon: Daemon) -> None:
    container = started(sleeper, cri_labels(secrets.token_hex(32), "app"))
    with ThreadPoolExecutor(THREADS) as pool:  # every gRPC thread, its client and the pool's names are made
        warm = pool.map(lambda n: exec_sync(cri, container, "sh", "-c", f"sleep 0.2; echo {n}").stdout,
                        range(2 * THREADS))
        assert list(warm) == [f"{n}\n".encode() for n in range(2 * THREADS)]
    before = daemon_usage(daemon)
    for n in range(100):
        assert exec_sync(cri, container, "sh", "-c", f"echo {n}; echo {n} >&2").stderr == f"{n}\n".encode()
    wait_until(lambda: daemon_usage(daemon) == before, message=f"the daemon's use to come back to {before}, "
                                                                f"it is {daemon_usage(daemon)}")
