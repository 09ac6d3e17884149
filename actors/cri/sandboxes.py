"""The CRI's pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus
and ListPodSandbox, on the pod store (actors/pods), the pod network (actors/podnet) and the
daemon's containers (through actorctl's client library: the infra container is an actord
container, so `actorctl containers list` shows it).

    run     check the config (podconfig.py), reserve the name, write the pod's files, mount its
            /dev/shm tmpfs (not with host IPC), make its netns, CNI ADD, write the infra bundle,
            start the infra container, write the record READY; a failure at any step undoes the
            steps before, in reverse, and leaves nothing
    stop    kill every container labelled with the pod (the infra and the CRI's containers:
            those stay listed, EXITED with their exit, until removed), unmount its shm, CNI DEL,
            remove the netns (as containerd does at stop), NOTREADY; idempotent
    remove  stop if READY, remove the pod's CRI containers, then the pod's dir and record; an
            unknown id is success (the CRI's rule)
    status  NOT_FOUND for an unknown id; READY only while the infra container runs

Calls on one pod hold its lock (the store's); calls on different pods run at once.

A daemon killed during a run leaves a pod half-made, with no record: at start-up `sweep`
runs CNI DEL with what its ADD kept, removes its netns and its dir (and any netns or shm no
pod has); the infra container, which actord keeps running like any other, is removed by the
first ListPodSandbox or RunPodSandbox (the daemon answers only once the CRI serves).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client, NotFound
from actorctl.client.errors import ActordError
from actors.cri.containers import CriContainers
from actors.cri.daemonlink import DaemonLink
from actors.cri.images import said, timeout_for
from actors.cri.podconfig import PodConfig, host_security, read_pod_config
from actors.cri.status import Refusal, status_of
from actors.podnet.cni import PodNetwork, PodRef, PortMapping, attachment_of
from actors.podnet.conf import ConfError
from actors.podnet.netns import NetnsError, create_netns, is_netns, list_netns, remove_netns
from actors.podnet.plugin import PluginError
from actors.pods.infra import InfraSpec, infra_spec, make_bundle, write_pod_files
from actors.pods.shm import HOST_SHM, ShmError, list_shm, mount_shm, remove_shm
from actors.pods.states import PodState
from actors.pods.store import CNI_RESULT, AmbiguousId, NameTaken, PodRecord, PodStore

__all__ = ["POD_LABEL", "TYPE_LABEL", "PodSandboxes", "pod_labels"]

logger = logging.getLogger(__name__)

TYPE_LABEL = "io.kubernetes.cri.type"
POD_LABEL = "actord.pod"
"""The label every container of a pod carries: its pod's id (stop kills them by it)."""
START_TIMEOUT = 60.0
"""Seconds the infra container's start may take at most (the daemon's --start-timeout bounds it too)."""
STATES = {PodState.READY: api_pb2.SANDBOX_READY, PodState.NOTREADY: api_pb2.SANDBOX_NOTREADY}


def pod_labels(pod_id: str, config: PodConfig) -> dict[str, str]:
    """The infra container's labels: what it is and whose."""
    return {TYPE_LABEL: "sandbox", POD_LABEL: pod_id, "io.kubernetes.pod.name": config.metadata.name,
            "io.kubernetes.pod.namespace": config.metadata.namespace, "io.kubernetes.pod.uid": config.metadata.uid}


def _unknown(message: str) -> Refusal:
    return Refusal(grpc.StatusCode.UNKNOWN, message)


def _not_found(pod_id: str) -> Refusal:
    return Refusal(grpc.StatusCode.NOT_FOUND, f"pod sandbox {pod_id!r} not found")


class PodSandboxes:
    """The pod methods of the RuntimeService, on one store and one pod network."""

    def __init__(self, link: DaemonLink, store: PodStore, network: PodNetwork, netns_dir: Path, shm_dir: Path,
                 containers: CriContainers) -> None:
        self.link = link
        self.containers = containers
        self.store = store
        self.network = network
        self.netns_dir = netns_dir
        self.shm_dir = shm_dir
        self._orphans_swept = False
        self._orphans_lock = threading.Lock()

    def cache_file(self, pod_id: str) -> Path:
        return self.store.pod_dir(pod_id) / CNI_RESULT

    # --- what a killed daemon left ---

    def sweep(self) -> None:
        """Undo the runs a killed daemon left half-made (a pod dir without a record), and remove
        the netns files and shm mounts no pod has; each failure is logged, the rest goes on."""
        for pod_id in self.store.unrecorded():
            try:
                self.network.delete(PodRef(pod_id, "", ""), self.netns_dir / pod_id, [], self.cache_file(pod_id))
                remove_netns(self.netns_dir, pod_id)
                self.store.remove_dir(pod_id)
                logger.warning("pod %s: a run cut short by a daemon stop, undone", pod_id)
            except (ConfError, PluginError, NetnsError, OSError) as exc:
                logger.error("pod %s: a run cut short by a daemon stop cannot be undone: %s", pod_id, exc)
        for pod_id in list_netns(self.netns_dir):
            if not self.store.known(pod_id) and not self.store.pod_dir(pod_id).exists():
                try:
                    remove_netns(self.netns_dir, pod_id)
                except NetnsError as exc:
                    logger.error("%s", exc)
        for pod_id in list_shm(self.shm_dir):
            if not self.store.known(pod_id):
                try:
                    remove_shm(self.shm_dir, pod_id)
                except ShmError as exc:
                    logger.error("%s", exc)

    def _sweep_orphan_infra(self) -> None:
        """Once per daemon run: remove the infra containers of pods the store does not know."""
        with self._orphans_lock:
            if self._orphans_swept:
                return
            client = self.link.client()
            for container in client.containers():
                pod_id = container.labels.get(POD_LABEL)
                if container.labels.get(TYPE_LABEL) == "sandbox" and pod_id and not self.store.known(pod_id):
                    logger.warning("pod %s: its infra container %s outlived its run; removing it", pod_id,
                                   container.id)
                    self._kill_container(client, container.id)
            self._orphans_swept = True

    # --- run ---

    def run(self, request: api_pb2.RunPodSandboxRequest, context: grpc.ServicerContext) -> str:
        """The new pod's id, once it is READY; a Refusal (nothing left) otherwise."""
        config = read_pod_config(request, host_security())
        self._sweep_orphan_infra()
        try:
            pod_id = self.store.reserve(config.metadata)
        except NameTaken as exc:
            raise Refusal(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        undo: list[tuple[str, Callable[[], None]]] = []
        try:
            with self.store.locked(pod_id):
                self._make(pod_id, config, undo, context)
        except BaseException as exc:
            self._undo(pod_id, undo)
            self.store.release(pod_id, config.metadata)
            if isinstance(exc, (ConfError, PluginError)):
                raise _unknown(f"pod sandbox {config.metadata.reserved_name}: cannot set up its network: {exc}") \
                    from None
            if isinstance(exc, (NetnsError, ShmError, OSError)):
                raise _unknown(f"pod sandbox {config.metadata.reserved_name}: {exc}") from None
            if isinstance(exc, ActordError):
                raise Refusal(status_of(exc), f"pod sandbox {config.metadata.reserved_name}: its infra container "
                                              f"did not start: {said(exc)}") from None
            raise
        logger.info("pod %s (%s) ready", pod_id, config.metadata.reserved_name)
        return pod_id

    def _make(self, pod_id: str, config: PodConfig, undo: list[tuple[str, Callable[[], None]]],
              context: grpc.ServicerContext) -> None:
        pod_dir = self.store.pod_dir(pod_id)
        undo.append(("its dir", lambda: self.store.remove_dir(pod_id)))
        write_pod_files(pod_dir, config.dns, "" if config.host_network else config.hostname)
        shm = HOST_SHM
        if not config.host_ipc:
            undo.append(("its shm", lambda: remove_shm(self.shm_dir, pod_id)))
            shm = mount_shm(self.shm_dir, pod_id)
        netns = ""
        if not config.host_network:
            netns_path = create_netns(self.netns_dir, pod_id)
            netns = str(netns_path)
            undo.append(("its netns", lambda: remove_netns(self.netns_dir, pod_id)))
            ref = PodRef(pod_id, config.metadata.name, config.metadata.namespace)
            undo.append(("its network", lambda: self.network.delete(ref, netns_path, config.port_mappings,
                                                                    self.cache_file(pod_id))))
            self.network.add(ref, netns_path, config.port_mappings, self.cache_file(pod_id))
        cgroups_path = f"{config.cgroup_parent}/{pod_id}" if config.cgroup_parent else ""
        bundle = make_bundle(pod_dir, infra_spec(pod_dir, InfraSpec(
            netns=netns, host_pid=config.host_pid, host_ipc=config.host_ipc, hostname=config.hostname,
            sysctls=config.sysctls, cgroups_path=cgroups_path, shm=str(shm))))
        client = self.link.client()
        undo.append(("its infra container", lambda: self._kill_container(self.link.client(), pod_id)))
        saved, client.timeout = client.timeout, timeout_for(context, START_TIMEOUT)
        try:
            client.start(pod_id, str(bundle), labels=pod_labels(pod_id, config))
        finally:
            client.timeout = saved
        self.store.create(PodRecord(
            id=pod_id, metadata=config.metadata, state=PodState.READY, created_at=time.time_ns(), netns=netns,
            infra_id=pod_id, labels=config.labels, annotations=config.annotations, host_network=config.host_network,
            host_pid=config.host_pid, host_ipc=config.host_ipc, hostname=config.hostname,
            log_directory=config.log_directory, runtime_handler=config.runtime_handler,
            port_mappings=tuple(mapping.capability() for mapping in config.port_mappings)))

    def _undo(self, pod_id: str, undo: list[tuple[str, Callable[[], None]]]) -> None:
        """Undo a failed run's steps, the last first; a step that fails is logged, the others run."""
        for what, step in reversed(undo):
            try:
                step()
            except Exception as exc:  # each undo is tried whatever the others did
                logger.error("pod %s: a failed run could not remove %s: %s", pod_id, what, exc)

    @staticmethod
    def _kill_container(client: Client, container_id: str) -> None:
        """Kill and remove an actord container; gone already is fine."""
        try:
            client.remove(container_id, force=True)
        except NotFound:
            pass

    # --- stop and remove ---

    def _resolve(self, pod_id: str) -> str | None:
        try:
            return self.store.resolve(pod_id)
        except AmbiguousId as exc:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    def stop(self, pod_id: str) -> None:
        """Stop the pod; NOT_FOUND if there is none."""
        found = self._resolve(pod_id)
        if found is None:
            raise _not_found(pod_id)
        with self.store.locked(found) as record:
            if record is None:
                raise _not_found(pod_id)
            self._stop(record)

    def _stop(self, record: PodRecord) -> PodRecord:
        client = self.link.client()
        members = [container.id for container in client.containers()
                   if container.labels.get(POD_LABEL) == record.id or container.id == record.infra_id]
        for container_id in members:
            self._kill_container(client, container_id)
        self.containers.pod_stopped(record.id)
        try:
            remove_shm(self.shm_dir, record.id)
        except ShmError as exc:
            raise _unknown(f"pod sandbox {record.id}: {exc}") from None
        if record.netns:
            netns = Path(record.netns)
            if self.cache_file(record.id).exists() or is_netns(netns):
                mappings = [PortMapping(int(m["hostPort"]), int(m["containerPort"]), str(m["protocol"]),
                                        str(m.get("hostIP", ""))) for m in record.port_mappings]
                try:
                    self.network.delete(PodRef(record.id, record.metadata.name, record.metadata.namespace), netns,
                                        mappings, self.cache_file(record.id))
                except (ConfError, PluginError) as exc:
                    raise _unknown(f"pod sandbox {record.id}: cannot tear down its network: {exc}") from None
            try:
                remove_netns(self.netns_dir, record.id)
            except NetnsError as exc:
                raise _unknown(f"pod sandbox {record.id}: {exc}") from None
        stopped = self.store.move(record, PodState.NOTREADY)
        if record.state is PodState.READY:
            logger.info("pod %s (%s) stopped", record.id, record.metadata.reserved_name)
        return stopped

    def remove(self, pod_id: str) -> None:
        """Remove the pod (stopping it first); an unknown id is success."""
        found = self._resolve(pod_id)
        if found is None:
            return
        with self.store.locked(found) as record:
            if record is None:
                return
            stopped = self._stop(record)
            self.containers.pod_removed(record.id)
            try:
                self.store.remove(stopped)
            except OSError as exc:
                raise _unknown(f"pod sandbox {record.id}: cannot remove its dir: {exc}") from None
        logger.info("pod %s (%s) removed", record.id, record.metadata.reserved_name)

    # --- status and list ---

    def _running_infra(self) -> set[str]:
        """The ids of the containers that run now (one call for any number of pods)."""
        return {container.id for container in self.link.client().containers()
                if container.status in ("running", "paused")}

    @staticmethod
    def _state(record: PodRecord, running: set[str]) -> PodState:
        """READY while the record says so and its infra container runs."""
        return PodState.READY if record.state is PodState.READY and record.infra_id in running else PodState.NOTREADY

    @staticmethod
    def _metadata(record: PodRecord) -> api_pb2.PodSandboxMetadata:
        meta = record.metadata
        return api_pb2.PodSandboxMetadata(name=meta.name, uid=meta.uid, namespace=meta.namespace,
                                          attempt=meta.attempt)

    def status(self, pod_id: str, verbose: bool) -> api_pb2.PodSandboxStatusResponse:
        found = self._resolve(pod_id)
        record = None if found is None else self.store.get(found)
        if record is None:
            raise _not_found(pod_id)
        state = self._state(record, self._running_infra())
        network = api_pb2.PodSandboxNetworkStatus()
        attachment = attachment_of(self.cache_file(record.id)) if record.netns else None
        if attachment is not None and attachment.ips:
            network.ip = attachment.ips[0]
            network.additional_ips.extend(api_pb2.PodIP(ip=ip) for ip in attachment.ips[1:])
        options = api_pb2.NamespaceOption(
            network=api_pb2.NODE if record.host_network else api_pb2.POD,
            pid=api_pb2.NODE if record.host_pid else api_pb2.CONTAINER,
            ipc=api_pb2.NODE if record.host_ipc else api_pb2.POD)
        status = api_pb2.PodSandboxStatus(
            id=record.id, metadata=self._metadata(record), state=STATES[state], created_at=record.created_at,
            network=network, linux=api_pb2.LinuxPodSandboxStatus(namespaces=api_pb2.Namespace(options=options)),
            labels=record.labels, annotations=record.annotations, runtime_handler=record.runtime_handler)
        info = {}
        if verbose:
            verbose_info: dict[str, Any] = {"record": record.to_json(), "state": state.name,
                                            "bundle": str(self.store.pod_dir(record.id) / "bundle"),
                                            "cni_result": None if attachment is None else attachment.result}
            info["info"] = json.dumps(verbose_info)
        return api_pb2.PodSandboxStatusResponse(status=status, info=info)

    def list(self, request: api_pb2.ListPodSandboxRequest) -> list[api_pb2.PodSandbox]:
        self._sweep_orphan_infra()
        wanted = request.filter if request.HasField("filter") else None
        records: Iterable[PodRecord] = self.store.all()
        if wanted is not None and wanted.id:
            try:
                found = self.store.resolve(wanted.id)
            except AmbiguousId:
                found = None
            records = [record for record in records if record.id == found]
        running = self._running_infra()
        items = []
        for record in records:
            state = STATES[self._state(record, running)]
            if wanted is not None and wanted.HasField("state") and wanted.state.state != state:
                continue
            if wanted is not None and any(record.labels.get(key) != value
                                          for key, value in wanted.label_selector.items()):
                continue
            items.append(api_pb2.PodSandbox(id=record.id, metadata=self._metadata(record), state=state,
                                            created_at=record.created_at, labels=record.labels,
                                            annotations=record.annotations, runtime_handler=record.runtime_handler))
        return items
