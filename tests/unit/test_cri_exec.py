"""The pure parts of ExecSync, UpdateContainerResources and container stats: output caps, the
ExecSync process names, which fields an update refuses, the stats filter, a pod's summed stats."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from actorctl.client.types import Container, Stats
from actors.cri.execsync import ANSWER_LIMIT, STREAM_CAP, OutputBuffer, ProcessNames
from actors.cri.lookup import is_cri_container
from actors.cri.podstats import summed
from actors.cri.resources import refused_fields
from actors.cri.stats import attributes, selected
from actors.pods.states import PodState
from actors.pods.store import PodMetadata, PodRecord
from actors.supervisor.pause import CPU_LIST

POD = "a" * 64


def container(container_id: str, **labels: str) -> Container:
    return Container(id=container_id, status="running", bundle="/b", labels=labels, init=False, processes=(),
                     restart=None)


def cri(container_id: str, pod: str = POD, **labels: str) -> Container:
    return container(container_id, **{"io.kubernetes.cri.type": "container", "actord.pod": pod,
                                      "io.kubernetes.cri.container-name": "app",
                                      "io.kubernetes.cri.container-attempt": "3", **labels})


def test_output_is_kept_up_to_its_cap_and_both_streams_fit_an_answer() -> None:
    buffer = OutputBuffer(cap=10)
    for part in (b"0123", b"4567", b"89ab", b"cd"):
        buffer.add(part)
    assert (buffer.value(), buffer.dropped) == (b"0123456789", 4)
    assert 2 * STREAM_CAP < ANSWER_LIMIT - 1024


def test_process_names_are_the_lowest_free_and_freed_at_the_end() -> None:
    names = ProcessNames()
    with names.claim("c1") as first, names.claim("c1") as second, names.claim("c2") as other:
        assert (first(), second(), other()) == ("execsync-0", "execsync-1", "execsync-0")
        assert first() == "execsync-2"  # a refused name is held until the claim ends
    with names.claim("c1") as again:
        assert again() == "execsync-0"
    assert names._in_use == {}


def test_only_the_contracts_labels_make_a_cri_container() -> None:
    assert is_cri_container(cri("x"))
    assert not is_cri_container(container("x"))
    assert not is_cri_container(container("x", **{"io.kubernetes.cri.type": "sandbox", "actord.pod": POD}))
    assert not is_cri_container(container("x", **{"io.kubernetes.cri.type": "container"}))


def test_update_refuses_what_this_host_cannot_apply() -> None:
    plain = api_pb2.UpdateContainerResourcesRequest(linux=api_pb2.LinuxContainerResources(
        memory_limit_in_bytes=1 << 20, cpuset_cpus="0-1", oom_score_adj=100))
    assert refused_fields(plain) == []
    refused = api_pb2.UpdateContainerResourcesRequest(linux=api_pb2.LinuxContainerResources(
        unified={"memory.high": "1"}, hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=1)]))
    assert [field.split(" ")[0].rstrip(":") for field in refused_fields(refused)] == ["linux.unified",
                                                                                   "linux.hugepage_limits"]


def test_cpu_lists() -> None:
    for good in ("0", "0-3", "0,2,4-7"):
        assert CPU_LIST.match(good)
    for bad in ("", "a", "0-", ",1", "1;2", "0-3\n", "-1"):
        assert not CPU_LIST.match(bad)


def test_stats_filter_and_attributes() -> None:
    one = cri("0123abcd" + "0" * 56, tier="web")
    assert selected(one, api_pb2.ContainerStatsFilter())
    assert selected(one, api_pb2.ContainerStatsFilter(id="0123ab", pod_sandbox_id="aaaa",
                                                      label_selector={"tier": "web"}))
    assert not selected(one, api_pb2.ContainerStatsFilter(id="0124"))
    assert not selected(one, api_pb2.ContainerStatsFilter(pod_sandbox_id="b"))
    assert not selected(one, api_pb2.ContainerStatsFilter(label_selector={"tier": "db"}))
    shown = attributes(one)
    assert (shown.id, shown.metadata.name, shown.metadata.attempt, dict(shown.labels)) == (
        one.id, "app", 3, {"tier": "web"})


def figures(cpu: int, usage: int, inactive: int, rss: int, pids: int) -> Stats:
    return Stats(timestamp=1.0, memory_usage=usage, memory_max_usage=None, memory_limit=None, memory_rss=rss,
                 memory_cache=None, memory_inactive_file=inactive, cpu_total_ns=cpu, cpu_throttled_periods=None,
                 pids_current=pids, pids_limit=None, blkio_read_bytes=None, blkio_write_bytes=None)


def test_pod_stats_are_the_sum_of_its_running_members() -> None:
    record = PodRecord(id=POD, metadata=PodMetadata(name="web", uid="u", namespace="ns", attempt=2),
                       state=PodState.READY, created_at=1, netns="", infra_id=POD, labels={"app": "web"})
    infra = container(POD, **{"io.kubernetes.cri.type": "sandbox", "actord.pod": POD})
    members = [(infra, figures(10, 100, 0, 50, 1)), (cri("c1"), figures(20, 1000, 300, 500, 2)), (cri("c2"), None)]
    stats = summed(record, members)
    assert (stats.attributes.id, stats.attributes.metadata.attempt, dict(stats.attributes.labels)) == (
        POD, 2, {"app": "web"})
    assert [item.attributes.id for item in stats.linux.containers] == ["c1", "c2"]
    assert stats.linux.cpu.usage_core_nano_seconds.value == 30
    memory = stats.linux.memory
    assert (memory.usage_bytes.value, memory.working_set_bytes.value, memory.rss_bytes.value) == (1100, 800, 550)
    assert stats.linux.process.process_count.value == 3
    assert not summed(record, [(cri("c2"), None)]).linux.HasField("cpu")
