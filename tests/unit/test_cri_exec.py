"""The pure parts of ExecSync, UpdateContainerResources and container stats: output caps, the
ExecSync process names, which fields an update refuses, the stats filter."""

from __future__ import annotations

from cri_api.v1 import api_pb2

from actorctl.client.types import Container
from actors.cri.execsync import ANSWER_LIMIT, STREAM_CAP, OutputBuffer, ProcessNames
from actors.cri.lookup import is_cri_container
from actors.cri.resources import refused_fields
from actors.cri.stats import attributes, selected
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
