"""The pod bench's own logic (bench/podfigures.py, bench/pod_memory.py): its percentiles and
per-pod memory are the arithmetic the report says, and a runtime's processes are its roots and
their descendants without the pods' workload."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "bench"))

from pod_memory import attributed, process_tree, pss_kib
from podfigures import mib, ms, per_pod_kib, percentile, row

WORKLOAD = ["sleep", "3600"]


def test_nearest_rank_percentiles() -> None:
    values = [float(n) for n in range(30, 0, -1)]
    assert percentile(values, 0.5) == 15.0
    assert percentile(values, 0.99) == 30.0, "with 30 values p99 is the slowest"
    assert percentile([float(n) for n in range(1, 201)], 0.99) == 198.0
    assert percentile([7.0], 0.5) == percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_per_pod_memory_is_the_growth_over_no_pods_divided_by_the_pods() -> None:
    assert per_pod_kib(with_pods=13_000, without=10_000, pods=30) == 100.0
    with pytest.raises(ValueError, match="no pods"):
        per_pod_kib(1, 1, 0)


def test_a_runtime_counts_its_descendants_but_not_the_workload_nor_what_that_starts() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 13: 12, 14: 11, 15: 14, 20: 1, 30: 1, 31: 30}
    argvs = {10: ["actord"], 11: ["actor-shim-spawner"], 12: ["actor-shim", "pod"], 13: ["catatonit", "-P"],
             14: ["actor-shim", "c"], 15: WORKLOAD, 20: ["someone-else"], 30: ["containerd-shim-runc-v2"],
             31: ["/pause"]}
    assert attributed([10], parents, argvs, WORKLOAD) == {10, 11, 12, 13, 14}
    assert attributed([30, 99], parents, argvs, WORKLOAD) == {30, 31}, "a root that has exited is skipped"


def test_this_process_is_in_the_tree_with_a_pss() -> None:
    parents, argvs = process_tree()
    assert parents[os.getpid()] == os.getppid() and argvs[os.getpid()]
    assert pss_kib(os.getpid()) > 0
    assert attributed([os.getpid()], parents, argvs, WORKLOAD) >= {os.getpid()}


def test_the_table_shows_missing_figures_and_ratios() -> None:
    assert ms(0.1234) == "123.4 ms" and ms(None) == "-"
    assert mib(2048) == "2.00 MiB" and mib(None) == "-"
    line = row("per pod", "2.00 MiB", "4.00 MiB", 0.5)
    assert line.split() == ["per", "pod", "2.00", "MiB", "4.00", "MiB", "0.50x"]
    assert row("p50", "unavailable", "1.0 ms", None).split() == ["p50", "unavailable", "1.0", "ms"]
