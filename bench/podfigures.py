"""The pod bench's arithmetic and table: percentiles, per-pod memory, and rows of a figure per
runtime with actord's ratio to containerd (blank where either has no figure)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["mib", "ms", "per_pod_kib", "percentile", "row", "section"]

LABEL, CELL = 40, 14


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (`share` in (0, 1]): the smallest value with at least that
    share of the values at or below it; with 30 values p99 is the largest, p50 the 15th."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def per_pod_kib(with_pods: int, without: int, pods: int) -> float:
    """What each of `pods` running pods adds to a runtime's PSS over the same runtime with none."""
    if pods <= 0:
        raise ValueError("no pods")
    return (with_pods - without) / pods


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.2f} MiB"


def section(title: str) -> str:
    return f"\n{title:<{LABEL + 2}}{'actord':>{CELL}}{'containerd':>{CELL}}{'actord/ctrd':>{CELL}}"


def row(label: str, ours: str, theirs: str, ratio: float | None) -> str:
    """One line: the label, each runtime's figure, actord's over containerd's."""
    shown = "" if ratio is None else f"{ratio:.2f}x"
    return f"  {label:<{LABEL}}{ours:>{CELL}}{theirs:>{CELL}}{shown:>{CELL}}".rstrip()
