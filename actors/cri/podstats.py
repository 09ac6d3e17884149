"""The CRI's PodSandboxStats and ListPodSandboxStats: a pod's CPU, memory and processes, the sum
of its members' cgroups, and each CRI container's own stats.

A pod's members are the actord containers labelled `actord.pod=<pod id>`: its infra container
and its CRI containers. Each has a cgroup of its own (under the pod's `cgroup_parent` when the
kubelet gives one, which then holds nothing else), so the pod's figures are their sum, as the
pod cgroup containerd reads would show them: CPU core ns, memory usage, working set and rss,
the process count. A member that does not run adds nothing; a pod none of whose members runs
answers its attributes alone. Network figures are not answered (no per-pod counter is read yet).
"""

from __future__ import annotations

import time

import grpc
from cri_api.v1 import api_pb2

from actorctl.client import Client
from actorctl.client.types import Container, Stats
from actors.cri.lookup import is_cri_container
from actors.cri.sandboxes import POD_LABEL
from actors.cri.stats import figures_of, stats_of, working_set
from actors.cri.status import Refusal
from actors.pods.store import AmbiguousId, PodRecord, PodStore

__all__ = ["list_pod_stats", "pod_stats"]


def attributes(record: PodRecord) -> api_pb2.PodSandboxAttributes:
    meta = record.metadata
    return api_pb2.PodSandboxAttributes(
        id=record.id, labels=record.labels, annotations=record.annotations,
        metadata=api_pb2.PodSandboxMetadata(name=meta.name, uid=meta.uid, namespace=meta.namespace,
                                            attempt=meta.attempt))


def summed(record: PodRecord, members: list[tuple[Container, Stats | None]]) -> api_pb2.PodSandboxStats:
    """The pod's stats from its members' figures (None for a member that does not run)."""
    answer = api_pb2.PodSandboxStats(attributes=attributes(record))
    running = [figures for _, figures in members if figures is not None]
    answer.linux.containers.extend(stats_of(container, figures) for container, figures in members
                                   if is_cri_container(container))
    if not running:
        return answer
    stamp = time.time_ns()
    answer.linux.cpu.CopyFrom(api_pb2.CpuUsage(timestamp=stamp, usage_core_nano_seconds=api_pb2.UInt64Value(
        value=sum(figures.cpu_total_ns or 0 for figures in running))))
    answer.linux.memory.CopyFrom(api_pb2.MemoryUsage(
        timestamp=stamp, usage_bytes=api_pb2.UInt64Value(value=sum(f.memory_usage or 0 for f in running)),
        working_set_bytes=api_pb2.UInt64Value(value=sum(working_set(f) for f in running)),
        rss_bytes=api_pb2.UInt64Value(value=sum(f.memory_rss or 0 for f in running))))
    answer.linux.process.CopyFrom(api_pb2.ProcessUsage(timestamp=stamp, process_count=api_pb2.UInt64Value(
        value=sum(f.pids_current or 0 for f in running))))
    return answer


def members_by_pod(client: Client) -> dict[str, list[tuple[Container, Stats | None]]]:
    """Every pod's member containers with their figures, by pod id (one list of the daemon's)."""
    found: dict[str, list[tuple[Container, Stats | None]]] = {}
    for container in client.containers():
        pod_id = container.labels.get(POD_LABEL)
        if pod_id:
            found.setdefault(pod_id, []).append((container, figures_of(client, container)))
    return found


def pod_stats(client: Client, store: PodStore, pod_id: str) -> api_pb2.PodSandboxStats:
    """One pod's stats (its id or a unique prefix); NOT_FOUND for no such pod."""
    try:
        found = store.resolve(pod_id)
    except AmbiguousId as exc:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
    record = None if found is None else store.get(found)
    if record is None:
        raise Refusal(grpc.StatusCode.NOT_FOUND, f"pod sandbox {pod_id!r} not found")
    return summed(record, members_by_pod(client).get(record.id, []))


def list_pod_stats(client: Client, store: PodStore,
                   wanted: api_pb2.PodSandboxStatsFilter) -> list[api_pb2.PodSandboxStats]:
    """Every pod's stats, oldest first; filters: `id` (or a prefix), `label_selector` (every pair)."""
    records = [record for record in store.all() if record.id.startswith(wanted.id)
               and all(record.labels.get(key) == value for key, value in wanted.label_selector.items())]
    members = members_by_pod(client) if records else {}
    return [summed(record, members.get(record.id, [])) for record in records]
