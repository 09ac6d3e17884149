"""CRI containers through the CRI socket of a real actord (as the kubelet drives them): images
from the session's registry (tests/conftest.py), each daemon's pods on a private CNI network
(tests/podnet_host.py). Create, start, what the process sees of its pod, exits by itself
(Completed, Error), the pod's /dev/shm they share, stop with a timeout, the CRI log and its
reopening, the list's filters, the refusals (and that they leave nothing), a daemon killed and
started again, and what the pod's stop and removal do to its containers. After each removal:
nothing of it is left."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cri_api.v1 import api_pb2

from tests.cri_client import CALL_TIMEOUT, CriClient, grpc_error, image_spec
from tests.harness import Daemon, checked_daemon, mounts_under, new_state_dir, remove_state_dir, wait_until
from tests.podnet_host import BIN_DIRS, PrivateNetwork, private_network, remove_idle_shared_chains, shared_chains
from tests.registry import Registry, registries_conf

CREATED, RUNNING, EXITED = api_pb2.CONTAINER_CREATED, api_pb2.CONTAINER_RUNNING, api_pb2.CONTAINER_EXITED

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _shared_chains_restored() -> Iterator[None]:
    existed = shared_chains()
    yield
    remove_idle_shared_chains(existed)


@dataclass
class Node:
    """An actord on a private network with the registry's images, and a CRI client on its socket."""

    daemon: Daemon
    net: PrivateNetwork
    cri: CriClient
    image: str
    """The busybox image, pulled."""
    logs: Path
    """The pods' log_directory."""

    @property
    def runtime(self) -> Any:
        return self.cri.runtime

    def pod_config(self, name: str) -> api_pb2.PodSandboxConfig:
        metadata = api_pb2.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="test-ns", attempt=0)
        return api_pb2.PodSandboxConfig(metadata=metadata, hostname=f"{name}-host", log_directory=str(self.logs))

    def run_pod(self, name: str = "web") -> str:
        answer = self.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=self.pod_config(name)),
                                            timeout=CALL_TIMEOUT)
        pod_id: str = answer.pod_sandbox_id
        return pod_id

    def request(self, pod_id: str, name: str, script: str, *, pod: str = "web", image: str | None = None,
                **config: Any) -> api_pb2.CreateContainerRequest:
        return api_pb2.CreateContainerRequest(pod_sandbox_id=pod_id, sandbox_config=self.pod_config(pod),
                                              config=api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name, attempt=0), image=image_spec(image or self.image),
            command=["/bin/sh", "-c", script], log_path=f"{name}.log", **config))

    def create(self, pod_id: str, name: str, script: str, **config: Any) -> str:
        answer = self.runtime.CreateContainer(self.request(pod_id, name, script, **config), timeout=CALL_TIMEOUT)
        container_id: str = answer.container_id
        return container_id

    def start(self, container_id: str) -> None:
        self.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=container_id), timeout=CALL_TIMEOUT)

    def stop(self, container_id: str, timeout: int) -> None:
        self.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=container_id, timeout=timeout),
                                   timeout=CALL_TIMEOUT)

    def remove(self, container_id: str) -> None:
        self.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=container_id), timeout=CALL_TIMEOUT)

    def status(self, container_id: str) -> tuple[api_pb2.ContainerStatus, dict[str, Any]]:
        answer = self.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=container_id, verbose=True),
                                              timeout=CALL_TIMEOUT)
        return answer.status, json.loads(answer.info["info"])

    def state(self, container_id: str) -> int:
        status: int = self.status(container_id)[0].state
        return status

    def listed(self, **filters: Any) -> list[str]:
        request = api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(**filters)) if filters else \
            api_pb2.ListContainersRequest()
        return sorted(item.id for item in self.runtime.ListContainers(request, timeout=CALL_TIMEOUT).containers)

    def exec_sync(self, container_id: str, script: str) -> api_pb2.ExecSyncResponse:
        answer: api_pb2.ExecSyncResponse = self.runtime.ExecSync(
            api_pb2.ExecSyncRequest(container_id=container_id, cmd=["/bin/sh", "-c", script]), timeout=CALL_TIMEOUT)
        return answer

    def pid_of(self, container_id: str) -> int:
        with self.daemon.client() as client:
            process = client.container(container_id).process("init")
        assert process is not None and process.system_pid is not None
        return process.system_pid

    def bundles(self) -> list[str]:
        directory = self.daemon.root_dir / "images" / "containers"
        return sorted(os.listdir(directory)) if directory.is_dir() else []

    def records(self) -> list[Path]:
        return sorted((self.daemon.root_dir / "pods").glob("*/containers/*.json"))

    def leftovers(self, pod_id: str) -> list[str]:
        """What the pod's containers left, the pod itself running on: their shims, runc
        containers and actord containers (only the infra's are the pod's), bundles, mounts
        and records. A shim ends, and the daemon's ImageService removes a bundle, just after the
        removal has answered: those are waited for."""
        wait_until(lambda: len(self.daemon.live_shims()) == 1 and not self.bundles(),
                   message="the containers' shims and bundles to go")
        found = [f"runc container {entry['id']}" for entry in self.daemon.runc_containers() if entry["id"] != pod_id]
        with self.daemon.client() as client:
            found += [f"container {container.id}" for container in client.containers() if container.id != pod_id]
        found += [f"bundle {name}" for name in self.bundles()]
        found += [f"mount {point}" for point in mounts_under(self.daemon.root_dir / "images")]
        found += [f"record {path}" for path in self.records()]
        return found


@pytest.fixture
def start_node(request: pytest.FixtureRequest, registry: Registry, tmp_path: Path) -> Iterator[Callable[[], Node]]:
    """Start actord on a private network with the registry's images, the busybox one pulled."""
    with contextlib.ExitStack() as stack:

        def start() -> Node:
            net = stack.enter_context(private_network())
            state_dir = new_state_dir()
            stack.callback(remove_state_dir, state_dir)
            conf = registries_conf(tmp_path / "registries.conf", insecure=(registry.address,),
                                   search=(registry.address,))
            args = ["--cni-conf-dir", str(net.conf_dir), "--cni-bin-dir", ":".join(map(str, BIN_DIRS)),
                    "--registries-conf", str(conf)]
            daemon = stack.enter_context(checked_daemon(Daemon(state_dir, extra_args=args), request))
            wait_until((state_dir / "cri.sock").exists, message="the CRI socket")
            cri = stack.enter_context(CriClient(state_dir / "cri.sock"))
            stack.callback(remove_pods, cri)
            image = f"{registry.address}/team/bb:v1"
            cri.pull(image)
            logs = tmp_path / "logs"
            logs.mkdir(exist_ok=True)
            return Node(daemon, net, cri, image, logs)

        yield start


def remove_pods(cri: CriClient) -> None:
    """Remove every pod (and so its containers) of a daemon that still serves."""
    with contextlib.suppress(grpc.RpcError):
        for pod in cri.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=CALL_TIMEOUT).items:
            cri.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id), timeout=CALL_TIMEOUT)


def cri_lines(path: Path) -> list[str]:
    """The messages of a CRI log file (`<time> <stream> <F|P> <message>` lines)."""
    return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


def test_a_container_runs_in_its_pod_exits_by_itself_and_is_removed_leaving_nothing(
        start_node: Callable[[], Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    runner = node.create(pod_id, "runner", "hostname; echo ready; exec sleep 1000", labels={"role": "runner"},
                         annotations={"note": "a"})
    status, info = node.status(runner)
    assert (status.state, status.metadata.name, dict(status.labels)) == (CREATED, "runner", {"role": "runner"})
    assert status.image.image == node.image and status.image_ref.startswith("sha256:")
    assert status.log_path == str(node.logs / "runner.log") and info["record"]["state"] == "CREATED"
    assert node.bundles() == [runner], "the bundle is made at create"

    node.start(runner)
    assert node.state(runner) == RUNNING
    log = node.logs / "runner.log"
    wait_until(lambda: log.exists() and "ready" in cri_lines(log), message="the container's output in its log")
    assert cri_lines(log) == ["web-host", "ready"], "its hostname is the pod's"
    pid = node.pid_of(runner)
    infra = node.pid_of(pod_id)
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{infra}/ns/net"), "it is in the pod's netns"
    assert node.status(runner)[1]["pid"] == pid
    with node.daemon.client() as client:
        labels = client.container(runner).labels
    assert labels == {"io.kubernetes.cri.type": "container", "actord.pod": pod_id,
                      "io.kubernetes.cri.container-name": "runner", "io.kubernetes.cri.container-attempt": "0"}

    done = node.create(pod_id, "done", "echo bye")
    failed = node.create(pod_id, "failed", "exit 3")
    node.start(done)
    node.start(failed)
    wait_until(lambda: node.state(done) == EXITED and node.state(failed) == EXITED, message="both to exit")
    status, _ = node.status(done)
    assert (status.exit_code, status.reason) == (0, "Completed") and status.finished_at >= status.started_at > 0
    status, _ = node.status(failed)
    assert (status.exit_code, status.reason) == (3, "Error")
    assert cri_lines(node.logs / "done.log") == ["bye"]

    error = grpc_error(node.runtime.StartContainer, api_pb2.StartContainerRequest(container_id=done))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, "only a CREATED container starts"
    node.stop(done, 0)  # an EXITED one: nothing to do

    node.remove(runner)  # running: killed first
    node.remove(done)
    node.remove(failed)
    node.remove(runner)  # gone: success
    assert node.listed() == []
    assert node.leftovers(pod_id) == []


def test_the_containers_of_a_pod_share_its_shm_and_another_pods_do_not(start_node: Callable[[], Node]) -> None:
    node = start_node()
    web, db = node.run_pod("web"), node.run_pod("db")
    writer = node.create(web, "writer", "echo from-the-writer > /dev/shm/note; exec sleep 1000")
    reader = node.create(web, "reader", "exec sleep 1000")
    stranger = node.create(db, "stranger", "exec sleep 1000", pod="db")
    for container_id in (writer, reader, stranger):
        node.start(container_id)
    wait_until(lambda: node.exec_sync(reader, "cat /dev/shm/note").exit_code == 0,
               message="the writer's note in the reader's /dev/shm")
    assert node.exec_sync(reader, "cat /dev/shm/note").stdout == b"from-the-writer\n"
    assert node.exec_sync(reader, "echo from-the-reader > /dev/shm/answer").exit_code == 0
    assert node.exec_sync(writer, "cat /dev/shm/answer").stdout == b"from-the-reader\n"
    assert node.exec_sync(stranger, "ls -A /dev/shm").stdout == b"", "another pod's container sees the pod's shm"
    node.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=db), timeout=CALL_TIMEOUT)
    for container_id in (writer, reader):
        node.remove(container_id)
    assert node.leftovers(web) == []


def test_stop_kills_at_the_timeout_and_the_log_is_reopened(start_node: Callable[[], Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    stubborn = node.create(pod_id, "stubborn", "trap 'echo term' TERM; while :; do echo tick; sleep 0.1; done")
    node.start(stubborn)
    log = node.logs / "stubborn.log"
    wait_until(lambda: log.exists() and "tick" in cri_lines(log), message="ticks in the log")
    log.rename(node.logs / "stubborn.log.1")
    node.runtime.ReopenContainerLog(api_pb2.ReopenContainerLogRequest(container_id=stubborn), timeout=CALL_TIMEOUT)
    wait_until(lambda: log.exists() and "tick" in cri_lines(log), message="ticks in the reopened log")

    began = time.monotonic()
    node.stop(stubborn, 2)
    assert time.monotonic() - began >= 2, "SIGKILL only at the timeout"
    status, _ = node.status(stubborn)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 137, "Error")
    assert "term" in cri_lines(node.logs / "stubborn.log"), "SIGTERM first"
    error = grpc_error(node.runtime.ReopenContainerLog, api_pb2.ReopenContainerLogRequest(container_id=stubborn))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    node.remove(stubborn)
    assert node.leftovers(pod_id) == []


def test_the_list_filters(start_node: Callable[[], Node]) -> None:
    node = start_node()
    web = node.run_pod("web")
    db = node.run_pod("db")
    first = node.create(web, "first", "exec sleep 1000", labels={"app": "x", "tier": "a"})
    second = node.create(web, "second", "exec sleep 1000", labels={"app": "x", "tier": "b"})
    third = node.create(db, "third", "exec sleep 1000", pod="db", labels={"app": "y"})
    node.start(first)
    assert node.listed() == sorted([first, second, third]), "the infra containers are not listed"
    assert node.listed(id=first) == [first] and node.listed(id=first[:12]) == [first]
    assert node.listed(id="0" * 64) == []
    assert node.listed(pod_sandbox_id=web) == sorted([first, second]) and node.listed(pod_sandbox_id=db[:10]) == [third]
    assert node.listed(state=api_pb2.ContainerStateValue(state=RUNNING)) == [first]
    assert node.listed(state=api_pb2.ContainerStateValue(state=CREATED)) == sorted([second, third])
    assert node.listed(label_selector={"app": "x"}) == sorted([first, second])
    assert node.listed(label_selector={"app": "x", "tier": "b"}) == [second]
    for container_id in (first, second, third):
        node.remove(container_id)
    node.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=db), timeout=CALL_TIMEOUT)
    assert node.leftovers(web) == []


def test_refused_creates_answer_their_code_and_leave_nothing(start_node: Callable[[], Node],
                                                            registry: Registry) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    first = node.create(pod_id, "same", "exec sleep 1000")
    refusals = [
        (node.request(pod_id, "same", "true"), grpc.StatusCode.ALREADY_EXISTS),
        (node.request("f" * 64, "other", "true"), grpc.StatusCode.NOT_FOUND),
        (node.request(pod_id, "other", "true", image=f"{registry.address}/team/sleeper:v1"),
         grpc.StatusCode.NOT_FOUND),
        (node.request(pod_id, "other", "true", linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(run_as_username="nobody-here"))),
         grpc.StatusCode.NOT_FOUND),
        (node.request(pod_id, "other", "true", linux=api_pb2.LinuxContainerConfig(
            security_context=api_pb2.LinuxContainerSecurityContext(seccomp=api_pb2.SecurityProfile(
                profile_type=api_pb2.SecurityProfile.Localhost, localhost_ref="/nonexistent/profile.json")))),
         grpc.StatusCode.NOT_FOUND),
    ]
    for request, code in refusals:
        error = grpc_error(node.runtime.CreateContainer, request)
        assert error.code() == code, (request.config.metadata.name, error.details())
    assert node.listed() == [first]
    assert len(node.records()) == 1, "a refused create leaves no record"
    wait_until(lambda: node.bundles() == [first], message="the refused creates' bundles to go")
    node.remove(first)
    assert node.leftovers(pod_id) == []
    node.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)
    error = grpc_error(node.runtime.CreateContainer, node.request(pod_id, "late", "true"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, "the pod is not ready"


def test_a_killed_daemon_started_again_knows_what_ran_and_what_ended(start_node: Callable[[], Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    survivor = node.create(pod_id, "survivor", "exec sleep 1000")
    victim = node.create(pod_id, "victim", "exec sleep 1000")
    waiting = node.create(pod_id, "waiting", "exec sleep 1000")
    forgotten = node.create(pod_id, "forgotten", "exec sleep 1000")
    node.start(survivor)
    node.start(victim)
    pid, victim_pid = node.pid_of(survivor), node.pid_of(victim)
    node.daemon.stop(signal.SIGKILL)
    os.kill(victim_pid, signal.SIGKILL)  # it ends while the daemon is away
    next(node.daemon.root_dir.glob(f"pods/*/containers/{forgotten}.json")).unlink()  # a remove cut short
    node.daemon.start()
    wait_until((node.daemon.state_dir / "cri.sock").exists, message="the CRI socket")
    assert node.listed() == sorted([survivor, victim, waiting])
    assert node.state(survivor) == RUNNING and node.pid_of(survivor) == pid
    status, _ = node.status(victim)
    assert (status.state, status.exit_code, status.reason) == (EXITED, 137, "Error")
    wait_until(lambda: node.bundles() == sorted([survivor, waiting]),
               message="the victim's bundle to go with it, and the forgotten one's")
    node.start(waiting)
    assert node.state(waiting) == RUNNING, "a bundle made before the restart still starts"
    for container_id in (survivor, victim, waiting):
        node.remove(container_id)
    assert node.leftovers(pod_id) == []


def test_the_pods_stop_leaves_its_containers_exited_and_its_removal_takes_them(start_node: Callable[[], Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    running = node.create(pod_id, "running", "exec sleep 1000")
    created = node.create(pod_id, "created", "exec sleep 1000")
    node.start(running)
    shm = node.daemon.state_dir / "pods" / pod_id / "shm"
    assert mounts_under(node.daemon.state_dir / "pods") == [str(shm)]
    node.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)
    status, _ = node.status(running)
    assert (status.state, status.exit_code) == (EXITED, 137)
    assert mounts_under(node.daemon.state_dir / "pods") == [] and not shm.parent.exists()
    assert node.listed() == sorted([running, created])
    node.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=CALL_TIMEOUT)
    assert node.listed() == []
    wait_until(lambda: not node.daemon.live_shims() and not node.bundles(), message="every shim and bundle to go")
    assert node.bundles() == [] and node.records() == [] and node.daemon.runc_containers() == []
    assert mounts_under(node.daemon.root_dir) == [] and mounts_under(node.daemon.state_dir / "pods") == []


def test_a_daemon_stop_ends_a_stop_container_that_waits_for_its_timeout(start_node: Callable[[], Node]) -> None:
    node = start_node()
    pod_id = node.run_pod("web")
    stubborn = node.create(pod_id, "stubborn", "trap '' TERM; while :; do sleep 0.1; done")
    node.start(stubborn)
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(node.stop, stubborn, 300)
        wait_until(lambda: f"containers.signal '{stubborn}'" in node.daemon.log(), message="the stop's SIGTERM")
        assert node.daemon.stop(signal.SIGTERM, timeout=30) == 0, "the daemon stops without waiting 300 s"
        with pytest.raises(grpc.RpcError) as ended:
            stopping.result(timeout=30)
    assert ended.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    node.daemon.start()
    wait_until((node.daemon.state_dir / "cri.sock").exists, message="the CRI socket")
    assert node.state(stubborn) == RUNNING, "it outlived the daemon, as every actord container"
    node.stop(stubborn, 0)
    node.remove(stubborn)
    assert node.leftovers(pod_id) == []
