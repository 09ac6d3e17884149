"""The CRI's ContainerStats and ListContainerStats, from the daemon's `containers.stats`.

What each figure is (as containerd 1.6 reads a cgroup v1 container, and cadvisor):

* `cpu.usage_core_nano_seconds`: cpuacct.usage, the CPU time of every process of the container;
* `memory.usage_bytes`: memory.usage_in_bytes; `working_set_bytes` that less total_inactive_file
  (0 when the cache is larger), what the kubelet evicts by; `rss_bytes`: total_rss;
* `writable_layer`: bytes and inodes of the container's own upper dir, for a container of an
  image (`<images>/containers/<id>/upper`, actors/images/bundles.py); a container of a bundle
  the caller made has none, and answers none.

A container that does not run has no cgroup to read: it answers its attributes and writable
layer alone. Attributes: the id, `metadata` from the contract's labels (lookup.py), and the
container's other actord labels; annotations are not in actord's labels, so none are answered.
"""

from __future__ import annotations

import time
from pathlib import Path

from cri_api.v1 import api_pb2

from actorctl.client import Client
from actorctl.client.errors import Conflict, NotFound
from actorctl.client.types import Container, Stats
from actors.cri.imagefs import store_usage
from actors.cri.lookup import ATTEMPT_LABEL, NAME_LABEL, cri_container, cri_containers
from actors.cri.sandboxes import POD_LABEL, TYPE_LABEL

__all__ = ["container_stats", "figures_of", "list_container_stats", "selected", "stats_of", "usage_of",
           "working_set"]

CONTRACT_LABELS = frozenset({TYPE_LABEL, POD_LABEL, NAME_LABEL, ATTEMPT_LABEL})
"""actord labels that say what a CRI container is, not labels the kubelet gave it."""


def attributes(container: Container) -> api_pb2.ContainerAttributes:
    try:
        attempt = int(container.labels.get(ATTEMPT_LABEL, "0"))
    except ValueError:
        attempt = 0
    return api_pb2.ContainerAttributes(
        id=container.id,
        metadata=api_pb2.ContainerMetadata(name=container.labels.get(NAME_LABEL, ""), attempt=attempt),
        labels={key: value for key, value in container.labels.items() if key not in CONTRACT_LABELS})


def writable_layer(container: Container, now: int) -> api_pb2.FilesystemUsage | None:
    """The usage of an image container's upper dir; None for a container of a given bundle."""
    upper = Path(container.bundle) / "upper"
    if not upper.is_dir():
        return None
    usage = store_usage(upper)
    return api_pb2.FilesystemUsage(timestamp=now, fs_id=api_pb2.FilesystemIdentifier(mountpoint=str(upper)),
                                   used_bytes=api_pb2.UInt64Value(value=usage.used_bytes),
                                   inodes_used=api_pb2.UInt64Value(value=usage.inodes_used))


def figures_of(client: Client, container: Container) -> Stats | None:
    """The daemon's cgroup figures of a container that runs; None for one that does not."""
    if container.status not in ("running", "paused"):
        return None
    try:
        return client.stats(container.id)
    except (Conflict, NotFound):
        return None  # it exited meanwhile


def usage_of(figures: Stats) -> tuple[api_pb2.CpuUsage | None, api_pb2.MemoryUsage | None]:
    """The CRI's CPU and memory usage of a cgroup's figures."""
    stamp = int(figures.timestamp * 1e9)
    cpu = memory = None
    if figures.cpu_total_ns is not None:
        cpu = api_pb2.CpuUsage(timestamp=stamp, usage_core_nano_seconds=api_pb2.UInt64Value(value=figures.cpu_total_ns))
    if figures.memory_usage is not None:
        memory = api_pb2.MemoryUsage(
            timestamp=stamp, usage_bytes=api_pb2.UInt64Value(value=figures.memory_usage),
            working_set_bytes=api_pb2.UInt64Value(value=working_set(figures)),
            rss_bytes=api_pb2.UInt64Value(value=figures.memory_rss or 0))
    return cpu, memory


def working_set(figures: Stats) -> int:
    """Usage less the inactive page cache (0 when the cache is larger), as the kubelet's cadvisor."""
    return max((figures.memory_usage or 0) - (figures.memory_inactive_file or 0), 0)


def stats_of(container: Container, figures: Stats | None) -> api_pb2.ContainerStats:
    answer = api_pb2.ContainerStats(attributes=attributes(container))
    layer = writable_layer(container, time.time_ns())
    if layer is not None:
        answer.writable_layer.CopyFrom(layer)
    if figures is not None:
        cpu, memory = usage_of(figures)
        if cpu is not None:
            answer.cpu.CopyFrom(cpu)
        if memory is not None:
            answer.memory.CopyFrom(memory)
    return answer


def container_stats(client: Client, container_id: str) -> api_pb2.ContainerStats:
    """One CRI container's stats; NOT_FOUND (a Refusal) for an id that is no CRI container."""
    container = cri_container(client, container_id)
    return stats_of(container, figures_of(client, container))


def selected(container: Container, wanted: api_pb2.ContainerStatsFilter) -> bool:
    """Whether the filter selects it: `id` and `pod_sandbox_id` the full id or a prefix of it,
    every pair of `label_selector` among its labels."""
    if wanted.id and not container.id.startswith(wanted.id):
        return False
    if wanted.pod_sandbox_id and not container.labels.get(POD_LABEL, "").startswith(wanted.pod_sandbox_id):
        return False
    return all(container.labels.get(key) == value for key, value in wanted.label_selector.items())


def list_container_stats(client: Client, wanted: api_pb2.ContainerStatsFilter) -> list[api_pb2.ContainerStats]:
    return [stats_of(container, figures_of(client, container)) for container in cri_containers(client)
            if selected(container, wanted)]
