"""The CRI's containers: CreateContainer, StartContainer, StopContainer, RemoveContainer and
ReopenContainerLog, on the container store (containerstore.py), the pod store and the daemon's
containers (through actorctl's client library), as containerd's CRI does them.

    create  the pod READY, the image in the store, the name reserved; the daemon makes the
            bundle (`containers.prepare`: the image's root mounted, nothing started), crispec
            writes its config.json, the record is written CREATED; a failure undoes each step
    start   CREATED only: the actord container starts from that bundle, with the labels the
            CRI's other parts find it by (`container_labels`) and the CRI log; RUNNING, or
            EXITED with reason StartError when the start fails
    stop    the image's StopSignal (else SIGTERM), SIGKILL at the timeout, the exit recorded;
            a CREATED or EXITED container is left as it is
    remove  a running one is killed; the actord container and the bundle (the daemon's), then
            the record go; an unknown id is success

An actord container's id IS its CRI container id. How exits are learned: containerexits.py.
What ContainerStatus and ListContainers show: containerviews.py.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client, NotFound
from actorctl.client.errors import ActordError, Conflict
from actors.cri.containerexits import ACTIVE, exit_of, wait_ended
from actors.cri.containerstore import ContainerRecord, ContainerState, ContainerStore, NameTaken
from actors.cri.daemonlink import DaemonLink
from actors.cri.imagemap import check_image_name
from actors.cri.images import said
from actors.cri.status import Refusal, status_of
from actors.crispec.errors import CrispecError
from actors.crispec.pod import PodFacts
from actors.crispec.spec import container_spec
from actors.images.bundles import PREPARED_MARK
from actors.pods.shm import shm_path
from actors.pods.states import PodState
from actors.pods.store import POD_ID, AmbiguousId, PodRecord, PodStore
from hostos.atomicfile import write_file_atomic

__all__ = ["CONTAINER_ATTEMPT_LABEL", "CONTAINER_NAME_LABEL", "CriContainers", "container_labels"]

logger = logging.getLogger(__name__)

TYPE_LABEL = "io.kubernetes.cri.type"
POD_LABEL = "actord.pod"
CONTAINER_NAME_LABEL = "io.kubernetes.cri.container-name"
CONTAINER_ATTEMPT_LABEL = "io.kubernetes.cri.container-attempt"
START_EXIT_CODE = 128
"""The exit code of a container whose start failed (containerd's errorStartExitCode)."""
KILL_WAIT = 30.0
"""Seconds an exit is waited for after SIGKILL."""
TARGET = api_pb2.NamespaceMode.TARGET


def container_labels(record: ContainerRecord) -> dict[str, str]:
    """The actord container's labels: the contract by which the CRI's other parts (exec, stats)
    and StopPodSandbox find a CRI container and its pod."""
    return {TYPE_LABEL: "container", POD_LABEL: record.pod_id, CONTAINER_NAME_LABEL: record.name,
            CONTAINER_ATTEMPT_LABEL: str(record.attempt)}


def _not_found(container_id: str) -> Refusal:
    return Refusal(grpc.StatusCode.NOT_FOUND, f"container {container_id!r} not found")


def stop_signal_of(image_config: dict[str, Any]) -> str:
    """The image's StopSignal if it names one we know, else ""."""
    value = image_config.get("StopSignal")
    return value if isinstance(value, str) and parse_signal(value) is not None else ""


def parse_signal(text: str) -> int | None:
    """A signal's number from `SIGTERM`, `TERM` or `15`; None if it is none."""
    if text.isdigit():
        return int(text) if 0 < int(text) < signal.NSIG else None
    name = text.upper()
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        return None


class CriContainers:
    """The container methods of the RuntimeService, on one container store and one pod store."""

    def __init__(self, link: DaemonLink, pods: PodStore, store: ContainerStore, image_bundles: Path,
                 shm_dir: Path) -> None:
        self.link = link
        self.pods = pods
        self.store = store
        self.image_bundles = image_bundles
        """The daemon's image bundles (`<images>/containers`): a prepared one is marked PREPARED_MARK."""
        self.shm_dir = shm_dir
        """The pods' /dev/shm mounts (`<state-dir>/pods`, actors/pods/shm.py)."""
        self._swept = False
        self._sweep_lock = threading.Lock()

    def sweep(self) -> None:
        """Once per daemon run (the daemon answers only once the CRI serves, so at the first
        create or list): remove what a create or remove cut short by a daemon kill left without
        a record, the actord containers labelled as the CRI's and the prepared bundles."""
        with self._sweep_lock:
            if self._swept:
                return
            client = self.link.client()
            labelled = {container.id for container in client.containers()
                        if container.labels.get(TYPE_LABEL) == "container"}
            entries = os.listdir(self.image_bundles) if self.image_bundles.is_dir() else []
            prepared = {name for name in entries if POD_ID.match(name)
                        and (self.image_bundles / name / PREPARED_MARK).exists()}
            for container_id in sorted(labelled | prepared):
                if self.store.get(container_id) is None:
                    logger.warning("CRI container %s has no record (a daemon stop cut its create or remove "
                                   "short); removing it", container_id)
                    self._remove_actord(client, container_id)
            self._swept = True

    # --- create ---

    def _ready_pod(self, sandbox_id: str) -> PodRecord:
        try:
            pod_id = self.pods.resolve(sandbox_id)
        except AmbiguousId as exc:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        pod = None if pod_id is None else self.pods.get(pod_id)
        if pod is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"pod sandbox {sandbox_id!r} not found")
        if pod.state is not PodState.READY:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"pod sandbox {pod.id} is not ready")
        return pod

    def create(self, request: api_pb2.CreateContainerRequest) -> str:
        """The new container's id once it is CREATED; a Refusal (nothing left) otherwise."""
        config = request.config
        if not config.metadata.name:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "config.metadata.name is empty")
        pod = self._ready_pod(request.pod_sandbox_id)
        self.sweep()
        image_text = check_image_name(config.image.image, "config.image.image")
        client = self.link.client()
        try:
            image = client.inspect_image(image_text)
        except NotFound:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"image {image_text!r} not found: pull it first") from None
        image_config = image.get("config") or {}
        meta = config.metadata
        reserved_name = f"{meta.name}_{pod.metadata.name}_{pod.metadata.namespace}_{pod.metadata.uid}_{meta.attempt}"
        container_id = secrets.token_hex(32)
        try:
            self.store.reserve(reserved_name, container_id)
        except NameTaken as exc:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        undo: list[Callable[[], None]] = []
        try:
            with self.store.locked(container_id):
                bundle = Path(client.prepare(container_id, str(image["id"])))
                undo.append(lambda: self._remove_actord(self.link.client(), container_id))
                spec = container_spec(container_id, config, request.sandbox_config, image_config, bundle / "rootfs",
                                      self._pod_facts(client, pod, request.sandbox_config), image_name=image_text,
                                      target_pid=self._target_pid(client, config))
                write_file_atomic(bundle / "config.json", _json(spec))
                log_path = os.path.join(pod.log_directory, config.log_path) \
                    if pod.log_directory and config.log_path else ""
                self.store.create(ContainerRecord(
                    id=container_id, pod_id=pod.id, name=meta.name, attempt=meta.attempt,
                    reserved_name=reserved_name, state=ContainerState.CREATED, image=image_text,
                    image_ref=str(image["id"]), bundle=str(bundle), log_path=log_path, created_at=time.time_ns(),
                    labels=dict(config.labels), annotations=dict(config.annotations),
                    mounts=tuple(_mount(mount) for mount in config.mounts), stop_signal=stop_signal_of(image_config)))
        except BaseException as exc:
            for step in reversed(undo):
                try:
                    step()
                except Exception as failure:  # each undo is tried whatever the others did
                    logger.error("container %s: a failed create could not be undone: %s", container_id, failure)
            self.store.release(reserved_name, container_id)
            if isinstance(exc, CrispecError):
                raise Refusal(grpc.StatusCode[exc.kind.value], f"container {reserved_name}: {exc.message}") from None
            if isinstance(exc, ActordError):
                raise Refusal(status_of(exc), f"container {reserved_name}: {said(exc)}") from None
            if isinstance(exc, OSError):
                raise Refusal(grpc.StatusCode.UNKNOWN, f"container {reserved_name}: {exc}") from None
            raise
        logger.info("CRI container %s (%s) created in pod %s", container_id, reserved_name, pod.id)
        return container_id

    def _pod_facts(self, client: Client, pod: PodRecord, pod_config: api_pb2.PodSandboxConfig) -> PodFacts:
        infra = client.container(pod.infra_id).process("init")
        if infra is None or infra.system_pid is None:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"pod sandbox {pod.id}: its infra container does "
                                                               "not run")
        pod_dir = self.pods.pod_dir(pod.id)
        return PodFacts(sandbox_id=pod.id, infra_pid=infra.system_pid, netns=Path(pod.netns) if pod.netns else None,
                        resolv_conf=pod_dir / "resolv.conf", hostname_file=pod_dir / "hostname",
                        hosts_file=pod_dir / "hosts", cgroup_parent=pod_config.linux.cgroup_parent,
                        shm=None if pod.host_ipc else shm_path(self.shm_dir, pod.id))

    def _target_pid(self, client: Client, config: api_pb2.ContainerConfig) -> int | None:
        """The init pid of the container a TARGET PID namespace names (None: not TARGET)."""
        options = config.linux.security_context.namespace_options
        if options.pid != TARGET:
            return None
        target = self.store.resolve(options.target_id)
        try:
            process = None if target is None else client.container(target).process("init")
        except NotFound:
            process = None
        if process is None or process.system_pid is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"namespace_options.target_id {options.target_id!r}: no such "
                                                     "running container")
        return process.system_pid

    # --- start, stop, remove ---

    def _record(self, container_id: str) -> str:
        found = self.store.resolve(container_id)
        if found is None:
            raise _not_found(container_id)
        return found

    def start(self, container_id: str, timeout: float) -> None:
        found = self._record(container_id)
        with self.store.locked(found) as record:
            if record is None:
                raise _not_found(container_id)
            if record.state is not ContainerState.CREATED:
                raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                              f"container {record.id} is {record.state.value}: only a CREATED container starts")
            pod = self.pods.get(record.pod_id)
            if pod is None or pod.state is not PodState.READY:
                raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                              f"container {record.id}: its pod sandbox {record.pod_id} is not ready")
            client = self.link.client()
            seq = client.last_event_seq()
            saved, client.timeout = client.timeout, timeout
            try:
                started = client.start(record.id, record.bundle, labels=container_labels(record),
                                       cri_log=record.log_path or None)
            except ActordError as exc:
                self.store.move(record, ContainerState.EXITED, finished_at=time.time_ns(), exit_code=START_EXIT_CODE,
                                reason="StartError", message=said(exc))
                raise Refusal(status_of(exc), f"container {record.id} did not start: {said(exc)}") from None
            finally:
                client.timeout = saved
            init = started.process("init")
            self.store.move(record, ContainerState.RUNNING, started_at=time.time_ns(), start_seq=seq,
                            pid=0 if init is None or init.system_pid is None else init.system_pid)
        logger.info("CRI container %s started", found)

    def stop(self, container_id: str, timeout: int) -> None:
        """Stop it: its stop signal, SIGKILL after `timeout` seconds; a container that does not
        run is left as it is."""
        found = self._record(container_id)
        with self.store.locked(found) as record:
            if record is None:
                raise _not_found(container_id)
            if record.state is not ContainerState.RUNNING:
                return
            client = self.link.client()
            if timeout > 0:
                try:
                    client.signal(record.id, parse_signal(record.stop_signal) or signal.SIGTERM)
                except (NotFound, Conflict):  # it ended already
                    pass
                wait_ended(client, record.id, timeout)
            try:
                client.kill(record.id)
            except (NotFound, Conflict):  # it ended already
                pass
            self._ended(client, record, wait=KILL_WAIT)

    def _ended(self, client: Client, record: ContainerRecord, *, wait: float) -> ContainerRecord:
        """The record EXITED with its exit, waited for up to `wait` seconds."""
        wait_ended(client, record.id, wait)
        seen = exit_of(client, record)
        return self.store.move(record, ContainerState.EXITED, **seen.changes())

    def refresh(self, client: Client, record: ContainerRecord, active: set[str]) -> ContainerRecord:
        """The record with its exit once its actord container no longer runs (`active`: the ids
        of those that run); call with its lock held."""
        if record.state is not ContainerState.RUNNING or record.id in active:
            return record
        return self.store.move(record, ContainerState.EXITED, **exit_of(client, record).changes())

    def remove(self, container_id: str) -> None:
        found = self.store.resolve(container_id)
        if found is None:
            return
        with self.store.locked(found) as record:
            if record is None:
                return
            self._remove_actord(self.link.client(), record.id)
            try:
                self.store.remove(record)
            except OSError as exc:
                raise Refusal(grpc.StatusCode.UNKNOWN, f"container {record.id}: cannot remove its record: {exc}") \
                    from None
        logger.info("CRI container %s removed", found)

    @staticmethod
    def _remove_actord(client: Client, container_id: str) -> None:
        """Kill and remove the actord container, or release its prepared bundle; gone is fine."""
        try:
            client.remove(container_id, force=True)
        except NotFound:
            pass

    def reopen_log(self, container_id: str) -> None:
        found = self._record(container_id)
        record = self.store.get(found)
        if record is None or record.state is not ContainerState.RUNNING:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION, f"container {found} is not running")
        self.link.client().reopen_log(found)

    # --- the pod's calls ---

    def active(self) -> set[str]:
        """The ids of the actord containers whose init has not ended (one call for any number)."""
        return {container.id for container in self.link.client().containers() if container.status in ACTIVE}

    def pod_stopped(self, pod_id: str) -> None:
        """After StopPodSandbox killed the pod's containers: each that ran is EXITED with its
        exit (a CREATED one stays CREATED, as containerd's stop leaves it; its start is refused
        while the pod is not ready)."""
        client = self.link.client()
        active = self.active()
        for found in self.store.of_pod(pod_id):
            with self.store.locked(found.id) as record:
                if record is not None:
                    self.refresh(client, record, active)

    def pod_removed(self, pod_id: str) -> None:
        """Before RemovePodSandbox removes the pod's dir: each container goes (their records with it)."""
        for record in self.store.of_pod(pod_id):
            self.remove(record.id)


def _json(spec: dict[str, Any]) -> bytes:
    return json.dumps(spec, indent=1).encode()


def _mount(mount: api_pb2.Mount) -> dict[str, Any]:
    return {"container_path": mount.container_path, "host_path": mount.host_path, "readonly": mount.readonly,
            "selinux_relabel": mount.selinux_relabel, "propagation": int(mount.propagation)}
